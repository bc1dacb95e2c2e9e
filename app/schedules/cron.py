"""Cron expressions in an IANA time zone: next fire times, the latest missed one, a description (pure).

Expressions are evaluated by cronsim (the evaluator of Healthchecks.io), zones by ``zoneinfo``; nothing here
parses cron syntax itself. Daylight saving time follows Debian's cron, as cronsim does:

* a local time that does not exist (the spring-forward gap, 02:30 in Europe/Berlin on the last Sunday of March)
  fires once, at the moment the clocks jump (03:00 local);
* a local time that exists twice (the fall-back hour) fires once, at its first occurrence, when the expression
  names a fixed hour and minute (``30 2 * * *``); an expression that repeats within the hour or by the hour
  (``*/15 * * * *``, ``0 * * * *``) fires on both passes, so its real interval stays as written.
"""
from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import islice, pairwise

from cron_descriptor import ExpressionDescriptor, FormatException, Options
from cronsim import CronSim, CronSimError

# The macros of Vixie cron, as the 5-field expressions they stand for.
ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
MAX_EXPRESSION = 120
# Consecutive fires compared to find an expression's shortest interval (covers any hour and weekday pattern).
INTERVAL_SAMPLE = 500


class CronInvalid(ValueError):
    """An expression or time zone that cannot be used; ``field`` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def zone(name: object) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name``; ``CronInvalid`` for anything else."""
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise CronInvalid("timezone", "must be an IANA time zone name such as Europe/Berlin")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CronInvalid("timezone", f"{name[:64]!r} is not an IANA time zone name (such as Europe/Berlin)") from None


@dataclass(frozen=True)
class CronSpec:
    """A validated expression (as written) and its zone."""

    expression: str
    tz: zoneinfo.ZoneInfo

    @property
    def standard(self) -> str:
        """The 5-field form (aliases expanded)."""
        return ALIASES.get(self.expression.lower(), self.expression)

    def fires_after(self, instant: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``instant``, in UTC, ascending."""
        for local in CronSim(self.standard, instant.astimezone(self.tz)):
            yield local.astimezone(timezone.utc)

    def next_after(self, instant: datetime) -> datetime | None:
        """The first fire time strictly after ``instant`` (UTC), None if there is none."""
        return next(self.fires_after(instant), None)

    def upcoming(self, instant: datetime, count: int = 5) -> list[datetime]:
        """The next ``count`` fire times after ``instant`` (UTC)."""
        return list(islice(self.fires_after(instant), count))

    def latest_until(self, instant: datetime) -> datetime | None:
        """The last fire time at or before ``instant`` (UTC)."""
        start = (instant + timedelta(microseconds=1)).astimezone(self.tz)
        local = next(iter(CronSim(self.standard, start, reverse=True)), None)
        return local.astimezone(timezone.utc) if local else None

    def shortest_interval(self, instant: datetime) -> float | None:
        """The shortest gap (seconds) between consecutive fires after ``instant``; None if it fires at most once."""
        fires = list(islice(self.fires_after(instant), INTERVAL_SAMPLE))
        gaps = [(b - a).total_seconds() for a, b in pairwise(fires)]
        return min(gaps) if gaps else None

    def describe(self) -> str:
        """Words for people: "At 07:00, only on Monday (Europe/Berlin)"."""
        options = Options()
        options.use_24hour_time_format = True
        try:
            words = ExpressionDescriptor(self.standard, options).get_description()
        except (FormatException, ValueError, KeyError, IndexError):
            words = self.expression  # cronsim accepts a few forms the describer does not know
        return f"{words} ({self.tz.key})"


def compile_cron(expression: object, tz_name: object, now: datetime) -> CronSpec:
    """Check an expression and zone and that the expression fires at all; ``CronInvalid`` names the field."""
    tz = zone(tz_name)
    if not isinstance(expression, str) or not expression.strip() or len(expression) > MAX_EXPRESSION:
        raise CronInvalid("cron", "must be a 5-field cron expression such as '0 7 * * MON', or @hourly, @daily, "
                          "@weekly, @monthly")
    text = " ".join(expression.split())
    spec = CronSpec(text, tz)
    if text.startswith("@") and text.lower() not in ALIASES:
        raise CronInvalid("cron", f"unknown macro {text[:20]!r}; use one of {', '.join(sorted(ALIASES))}")
    try:
        first = spec.next_after(now)
    except CronSimError as exc:
        raise CronInvalid("cron", f"is not a valid cron expression: {exc}") from None
    if first is None:
        raise CronInvalid("cron", "never fires")
    return spec

