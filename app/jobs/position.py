"""Where a waiting job stands in line and when it should start, from the same rules the dispatcher follows."""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from app.extensions import db
from app.jobs.capacity import capacity
from app.jobs.models import Job, utcnow
from app.jobs.slots import ALL_REPORTS, WAITING, OwnerQueue, paused_scopes, slot_class
from app.jobs.states import JobState

# Durations of this many recent successes of a report predict the next ones.
RECENT_RUNS = 20
WAITING_ROWS = (Job.dispatched_at.is_(None), Job.state.in_([JobState.ENQUEUED.value, JobState.RETRYING.value]))


@dataclass(frozen=True)
class QueuePlace:
    """A waiting job's place: 1 is the next to start; ``predicted_start`` is None when it cannot be told."""

    position: int
    predicted_start: datetime | None
    paused: bool = False

    def to_json(self) -> dict[str, object]:
        """The JSON shape (job JSON, socket messages)."""
        return {"position": self.position, "predicted_start": self.predicted_start.isoformat()
                if self.predicted_start else None, "paused": self.paused}


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st …"""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queue_place(job: Job) -> QueuePlace | None:
    """The job's place in line, or None unless it waits (dispatched, running and finished jobs have none)."""
    if slot_class(job.state, job.dispatched_at) != WAITING:
        return None
    paused = paused_scopes()
    mine = _rank_in_own_line(job)
    position = mine + _served_before_in_each_round(job.owner, mine)
    if ALL_REPORTS in paused or job.report in paused:
        return QueuePlace(position, None, paused=True)
    return QueuePlace(position, _predicted_start(job, position))


def _rank_in_own_line(job: Job) -> int:
    """1 + the owner's waiting jobs that go before this one (higher priority, or as high and older)."""
    ahead = sa.or_(Job.priority > job.priority,
                   sa.and_(Job.priority == job.priority,
                           sa.tuple_(Job.created_at, Job.id) < sa.tuple_(job.created_at, job.id)))
    return 1 + int(db.session.execute(
        sa.select(sa.func.count()).where(Job.owner == job.owner, *WAITING_ROWS, ahead)
    ).scalar_one())


def _served_before_in_each_round(owner: str, rank: int) -> int:
    """Jobs of other owners handed out before the ``rank``-th of ``owner``'s: owners take turns, one job each.

    An owner whose turn comes before ours in the rotation gets up to ``rank`` jobs out first, one after us
    ``rank - 1``; nobody gets more than they have waiting.
    """
    rows = db.session.execute(sa.select(OwnerQueue.owner, OwnerQueue.waiting, OwnerQueue.served_at)
                              .where(OwnerQueue.waiting > 0)).all()
    turn = {o: served for o, _, served in rows}
    mine = _turn_key(turn.get(owner), owner)
    return sum(min(waiting, rank if _turn_key(served, other) < mine else rank - 1)
               for other, waiting, served in rows if other != owner)


def _turn_key(served_at: datetime | None, owner: str) -> tuple[int, datetime, str]:
    # The dispatcher's order: never served first, then served longest ago, then by name.
    return (0, datetime.min, owner) if served_at is None else (1, served_at.replace(tzinfo=None), owner)


def _predicted_start(job: Job, position: int) -> datetime | None:
    """When the ``position``-th job in line starts: slots free as running jobs end, each next job takes the
    report's recent mean duration."""
    duration = mean_duration(job.report)
    slots = capacity()
    if duration is None or slots <= 0:
        return None
    now = utcnow()
    frees = []
    for report, started in db.session.execute(sa.select(Job.report, Job.started_at)
                                              .where(Job.state == JobState.PROCESSING.value)).all():
        expected = mean_duration(report) or duration
        elapsed = (now - started).total_seconds() if started else 0.0
        frees.append(max(0.0, expected - elapsed))
    frees = sorted(frees)[:slots] + [0.0] * max(0, slots - len(frees))
    heapq.heapify(frees)
    start = 0.0
    for _ in range(position):
        start = heapq.heappop(frees)
        heapq.heappush(frees, start + duration)
    return now + timedelta(seconds=start)


def mean_duration(report: str) -> float | None:
    """Mean seconds of the report's recent successful runs (None before its first one)."""
    recent = (sa.select((sa.func.extract("epoch", Job.finished_at) - sa.func.extract("epoch", Job.started_at))
                        .label("took"))
              .where(Job.report == report, Job.state == JobState.SUCCEEDED.value, Job.started_at.is_not(None))
              .order_by(Job.created_at.desc()).limit(RECENT_RUNS).subquery())
    value = db.session.execute(sa.select(sa.func.avg(recent.c.took))).scalar_one()
    return float(value) if value is not None else None
