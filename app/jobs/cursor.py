"""Places in a job list: the opaque key of a job's (created_at, id), and the page a request asks for."""
from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class Cursor:
    """A position in (created_at, id) order; pages start strictly before or after it."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        """The text clients pass back (``before=`` / ``after=``); opaque to them, stable for us."""
        raw = f"{self.created_at.astimezone(timezone.utc).isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse what ``encode`` made; ``ValueError`` for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            moment, _, key = raw.partition("|")
            created_at = datetime.fromisoformat(moment)
            job_id = uuid.UUID(key)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValueError("not a list position this server made") from exc
        if created_at.tzinfo is None:
            raise ValueError("not a list position this server made")
        return cls(created_at, job_id)


# page=N (the old way to page) still answers within the newest SKIP_LIMIT jobs of a list; past them, by key.
SKIP_LIMIT = 10_000


@dataclass(frozen=True)
class Position:
    """Where a requested page starts: just older than ``before``, just newer than ``after``, or ``offset`` down."""

    before: Cursor | None = None
    after: Cursor | None = None
    offset: int = 0
    page: int | None = None  # the page= the client sent, echoed back


class BadPosition(ValueError):
    """A ``before``/``after``/``page`` parameter that cannot be used; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def position(args: Mapping[str, str], per_page: int) -> Position:
    """Read ``before=``, ``after=`` (opaque keys) or ``page=`` (1 = the newest page) from a query string."""
    for name in ("before", "after"):
        if raw := args.get(name):
            try:
                return Position(**{name: Cursor.decode(raw)})
            except ValueError:
                raise BadPosition(name, f"'{name}' is not a list position this server gave out; "
                                        "follow the links of a list page") from None
    raw = args.get("page")
    if not raw:
        return Position()
    page = int(raw) if raw.isdigit() else 0
    if page < 1:
        raise BadPosition("page", "'page' must be a whole number from 1")
    if (page - 1) * per_page >= SKIP_LIMIT:
        raise BadPosition("page", f"page={page} is past the newest {SKIP_LIMIT:,} jobs of this list, which page= "
                                  "reaches; follow the list's next link (before=...) to go further")
    return Position(offset=(page - 1) * per_page, page=page)
