"""When a job asked for later should run: ``run_at`` (RFC 3339) or ``delay_seconds``, within bounds (pure)."""
from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any


class RunAtInvalid(ValueError):
    """A due time that cannot be accepted; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_rfc3339(value: object) -> datetime:
    """An RFC 3339 date-time with its offset (``Z`` or ``±hh:mm``), as an aware datetime."""
    if not isinstance(value, str) or not 20 <= len(value) <= 40 or "T" not in value.upper():
        raise RunAtInvalid("run_at", "must be an RFC 3339 date-time with an offset, such as 2026-12-07T07:00:00+01:00")
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise RunAtInvalid("run_at", "must be an RFC 3339 date-time with an offset, such as 2026-12-07T07:00:00+01:00")
    return parsed.astimezone(timezone.utc)


def due_time(run_at: object, delay_seconds: object, now: datetime, *, horizon: timedelta,
             tolerance: timedelta) -> datetime | None:
    """The instant (UTC) a job should be enqueued, None for "now"; ``RunAtInvalid`` outside the bounds.

    Not before ``now - tolerance`` (clock skew between a client and us), not after ``now + horizon``.
    """
    if run_at is not None and delay_seconds is not None:
        raise RunAtInvalid("delay_seconds", "give either run_at or delay_seconds, not both")
    if delay_seconds is not None:
        if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, (int, float)) \
                or not math.isfinite(delay_seconds) or delay_seconds < 0:
            raise RunAtInvalid("delay_seconds", "must be a number of seconds, 0 or more")
        if delay_seconds > horizon.total_seconds():
            raise RunAtInvalid("delay_seconds", f"must be at most {horizon.total_seconds():.0f} (the horizon)")
        return now + timedelta(seconds=delay_seconds)
    if run_at is None:
        return None
    due = parse_rfc3339(run_at)
    if due < now - tolerance:
        raise RunAtInvalid("run_at", f"is in the past (more than {tolerance.total_seconds():.0f} s ago)")
    if due > now + horizon:
        raise RunAtInvalid("run_at", f"is more than {horizon.days} days ahead (the horizon)")
    return due


def requested_due(cfg: Mapping[str, Any], run_at: object, delay_seconds: object,
                  now: datetime | None = None) -> datetime | None:
    """``due_time`` within the deployment's bounds (``LONGRUN_RUN_AT_HORIZON_DAYS``, ``..._TOLERANCE_SECONDS``)."""
    return due_time(run_at, delay_seconds, now or datetime.now(timezone.utc),
                    horizon=timedelta(days=cfg["LONGRUN_RUN_AT_HORIZON_DAYS"]),
                    tolerance=timedelta(seconds=cfg["LONGRUN_RUN_AT_TOLERANCE_SECONDS"]))


def form_number(raw: str) -> float | None:
    """A number typed in a form field (empty: None); ``RunAtInvalid`` for text that is not one."""
    if not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError:
        raise RunAtInvalid("delay_seconds", "must be a number of seconds, 0 or more") from None
