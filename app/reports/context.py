"""What a report sees of the world: progress, cancellation, its result, a database connection."""
from __future__ import annotations

import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

_SAFE_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class JobCancelled(Exception):
    """Raised at a checkpoint when the job's owner or an operator asked it to stop."""


class ReportRefused(Exception):
    """Raised by a report that cannot run on this input or data: the job fails at once, with this message, and is
    not retried (the same input would be refused again)."""


@dataclass
class ResultFile:
    """The artifact a report produced."""

    filename: str
    content: bytes
    content_type: str

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.content)


class ReportContext(Protocol):
    """The small interface every report function receives as its first argument."""

    job_id: str
    attempt: int

    def progress(self, done: int, total: int, message: str | None = None) -> None:
        """Report ``done`` of ``total`` units; also a cancellation checkpoint."""

    def is_cancelled(self) -> bool:
        """True once cancellation was requested."""

    def check_cancelled(self) -> None:
        """Raise ``JobCancelled`` if cancellation was requested."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, waking up (and raising ``JobCancelled``) as soon as the job is cancelled."""

    def write_result(self, filename: str, content: bytes | str, content_type: str) -> None:
        """Keep ``content`` as the job's downloadable result."""

    def open_result(self, filename: str, content_type: str) -> ResultStream:
        """A file-like to write a large result to as it is made (``with ctx.open_result(...) as out:
        out.write(...)``): it never sits whole in memory."""

    def log(self, message: str) -> None:
        """Add a line to the job's history."""

    def checkpoint(self, state: Any) -> None:
        """Keep ``state`` (small JSON) as where to resume; written with the next progress sample."""

    @property
    def resume_from(self) -> Any:
        """The last checkpoint an earlier attempt of this job wrote, or None (start from the beginning)."""

    @property
    def connection(self) -> Any:
        """A SQLAlchemy connection for reading data."""


def percent(done: int, total: int) -> float:
    """Progress in percent, clamped to 0..100."""
    if total <= 0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * done / total))


class ResultStream(Protocol):
    """Where a report writes a streamed result: text is written as UTF-8."""

    def write(self, data: bytes | str) -> int:
        """Append ``data``."""

    def __enter__(self) -> ResultStream: ...

    def __exit__(self, *exc: object) -> None: ...


def result_type(filename: str, content_type: str, text: bool) -> str:
    """``ValueError`` for a filename a download could not carry safely; the content type (``text``: UTF-8)."""
    if not _SAFE_FILENAME.fullmatch(filename or ""):
        raise ValueError(f"result filename {filename!r} must be 1-100 letters, digits, '.', '_' or '-'")
    return f"{content_type}; charset=utf-8" if text and "charset" not in content_type else content_type


def encode_result(filename: str, content: bytes | str, content_type: str) -> ResultFile:
    """Validate and encode a result written by a report."""
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    return ResultFile(filename, data, result_type(filename, content_type, isinstance(content, str)))


class _InlineStream(io.BytesIO):
    """An in-memory result stream (InlineContext): the whole result, fine for tests and the v1 endpoint."""

    def __init__(self, ctx: InlineContext, filename: str, content_type: str) -> None:
        super().__init__()
        self._ctx, self._filename = ctx, filename
        self._content_type = result_type(filename, content_type, content_type.startswith("text/"))

    def write(self, data: bytes | str) -> int:  # type: ignore[override]
        return super().write(data.encode("utf-8") if isinstance(data, str) else data)

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self._ctx.result = ResultFile(self._filename, self.getvalue(), self._content_type)
        super().__exit__(kind, *rest)


def encode_checkpoint(state: Any, limit: int) -> Any:
    """``state`` as it will be stored and handed back (JSON round trip); ``ValueError`` if it cannot be."""
    try:
        text = json.dumps(state, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a checkpoint must be JSON (dicts, lists, strings, numbers, booleans, null): {exc}") from None
    if len(text.encode("utf-8")) > limit:
        raise ValueError(f"a checkpoint is {len(text.encode('utf-8'))} bytes as JSON; the limit is {limit} "
                         "(keep a cursor in it, not the data)")
    return json.loads(text)


@dataclass
class InlineContext:
    """A context for running a report in-process (the v1 endpoint and unit tests)."""

    job_id: str = "inline"
    attempt: int = 1
    connection: Any = None
    progress_log: list[tuple[int, int, str | None]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    result: ResultFile | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    resume_from: Any = None
    checkpoints: list[Any] = field(default_factory=list)
    max_checkpoint_bytes: int = 64 * 1024

    def progress(self, done: int, total: int, message: str | None = None) -> None:
        self.check_cancelled()
        self.progress_log.append((done, total, message))

    def is_cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled()

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.cancel_event.wait(left):
                raise JobCancelled()

    def write_result(self, filename: str, content: bytes | str, content_type: str) -> None:
        self.result = encode_result(filename, content, content_type)

    def open_result(self, filename: str, content_type: str) -> ResultStream:
        return _InlineStream(self, filename, content_type)

    def log(self, message: str) -> None:
        self.logs.append(message)

    def checkpoint(self, state: Any) -> None:
        self.checkpoints.append(encode_checkpoint(state, self.max_checkpoint_bytes))
