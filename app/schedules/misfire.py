"""What a due schedule fires: its slot on time, or — after downtime — what its misfire policy says (pure)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.schedules.cron import CronSpec
from app.schedules.models import RUN_ONCE


@dataclass(frozen=True)
class FirePlan:
    """The slot to run now (None: nothing), the next slot to wait for, and whether slots were missed."""

    slot: datetime | None
    next_fire_at: datetime | None
    missed: bool


def plan_fire(spec: CronSpec, due: datetime, now: datetime, policy: str, grace: timedelta) -> FirePlan:
    """Decide for a schedule whose next slot ``due`` has come (``due <= now``).

    A slot at most ``grace`` old is on time and runs. Older slots were missed (no clock ran): ``skip`` runs
    none of them, ``run_once`` runs the latest one alone — never one job per missed slot. Either way the
    next slot is the first one after ``now``.
    """
    latest = spec.latest_until(now) or due
    upcoming = spec.next_after(now)
    if latest <= due:  # no later slot has come: the usual case
        if now - due <= grace or policy == RUN_ONCE:
            return FirePlan(due, upcoming, missed=now - due > grace)
        return FirePlan(None, upcoming, missed=True)
    if now - latest <= grace or policy == RUN_ONCE:
        return FirePlan(latest, upcoming, missed=True)
    return FirePlan(None, upcoming, missed=True)
