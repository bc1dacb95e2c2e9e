"""Job counters kept at write time: totals, histogram buckets and jobs per state, for /metrics and the dashboard.

Every change is added to one of ``SHARDS`` rows per key in the transaction that makes it, so readers sum a
bounded number of rows whatever the history, and concurrent workers rarely wait on the same row. Finished jobs
are also counted per minute and per day (app/jobs/throughput.py), for the dashboard's charts.
"""
from __future__ import annotations

import random
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.extensions import db
from app.jobs import bookkeeping, throughput
from app.jobs.models import Job
from app.jobs.states import JobState
from app.jobs.upsert import Write

# A transaction adds to one shard drawn at random: two workers wait on each other only when they draw the same
# one, and then only until the other commits. Reads sum (keys x SHARDS) rows.
SHARDS = 16
# Upper bounds (seconds) of the duration and queue-wait histograms.
BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
INF = "+Inf"

# Counter names. Only IN_STATE (a gauge) is ever decremented; the others only grow.
CREATED, STARTED, ATTEMPTS, FINISHED = "created", "started", "attempts", "finished"
DURATION, QUEUE_WAIT = "duration", "queue_wait"  # histograms: label = bucket bound, seconds = their sum
IN_STATE = "in_state"  # label = state

Key = tuple[str, str, str]  # (name, report, label)
Delta = tuple[int, float]  # (value, seconds)
_PENDING = "longrun.counter_deltas"
_PENDING_BUCKETS = "longrun.bucket_deltas"


class JobCounter(db.Model):
    """One shard of one counter; the counter's value is the sum over its shards."""

    __tablename__ = "job_counters"

    name: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    report: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger)
    seconds: Mapped[float] = mapped_column(sa.Float)


def bucket_label(seconds: float) -> str:
    """The smallest histogram bound holding ``seconds`` (``+Inf`` past the last)."""
    return next((str(bound) for bound in BUCKETS if seconds <= bound), INF)


def transition_deltas(job: Job, old: JobState | None, new: JobState | None, *, first_start: bool = False
                      ) -> dict[Key, Delta]:
    """What ``job`` moving from ``old`` to ``new`` adds to each counter (``None``: not in the table)."""
    deltas: dict[Key, Delta] = {}

    def add(name: str, label: str = "", value: int = 1, seconds: float = 0.0) -> None:
        was = deltas.get((name, job.report, label), (0, 0.0))
        deltas[(name, job.report, label)] = (was[0] + value, was[1] + seconds)

    if old is None:
        add(CREATED)
    else:
        add(IN_STATE, old.value, -1)
    if new is None:
        return _nonzero(deltas)
    add(IN_STATE, new.value)
    if new == JobState.PROCESSING:
        add(ATTEMPTS)
        if first_start and job.started_at is not None:
            add(STARTED)
            # A job asked for later waits in line from its due time on, not from its creation.
            queued = max(job.created_at, job.scheduled_for or job.created_at)
            wait = max(0.0, (job.started_at - queued).total_seconds())
            add(QUEUE_WAIT, bucket_label(wait), 1, wait)
    if new.is_final:
        add(FINISHED, new.value)
        if job.started_at is not None and job.finished_at is not None:
            took = max(0.0, (job.finished_at - job.started_at).total_seconds())
            add(DURATION, bucket_label(took), 1, took)
    return _nonzero(deltas)


def _nonzero(deltas: dict[Key, Delta]) -> dict[Key, Delta]:
    # Processing -> Processing (a redelivered attempt) leaves the gauge as it was: no row to touch.
    return {key: d for key, d in deltas.items() if d != (0, 0.0)}


def record_transition(job: Job, old: JobState | None, new: JobState | None, *, first_start: bool = False) -> None:
    """Count ``job`` moving from ``old`` to ``new`` (``None``: created / deleted) when this transaction commits.

    ``first_start``: this move into Processing set ``started_at`` (the job's first start ever).
    """
    pending: dict[Key, Delta] = bookkeeping.pending(_PENDING, dict)
    for key, (value, seconds) in transition_deltas(job, old, new, first_start=first_start).items():
        was = pending.get(key, (0, 0.0))
        pending[key] = (was[0] + value, was[1] + seconds)
    buckets: dict[throughput.BucketKey, int] = bookkeeping.pending(_PENDING_BUCKETS, dict)
    for key, value in throughput.bucket_deltas(job, new).items():
        buckets[key] = buckets.get(key, 0) + value


@bookkeeping.writes_at_commit(rank=1, stores=(_PENDING, _PENDING_BUCKETS))
def _pending_writes(session: Session) -> list[Write]:
    """This transaction's counter and bucket changes, on one shard drawn at random."""
    pending = _nonzero(session.info.pop(_PENDING, None) or {})
    buckets = session.info.pop(_PENDING_BUCKETS, None) or {}
    shard = random.randrange(SHARDS)
    # In key order: two transactions on the same shard lock its rows in the same order.
    counters = [{"name": n, "report": r, "label": lb, "shard": shard, "value": v, "seconds": s}
                for (n, r, lb), (v, s) in sorted(pending.items())]
    finished = [{"unit": u, "start": t, "state": st, "shard": shard, "value": v}
                for (u, t, st), v in sorted(buckets.items())]
    return [Write(JobCounter.__table__, counters, ("value", "seconds")), throughput.write(finished)]


def read_totals(names: Iterable[str] | None = None) -> dict[Key, Delta]:
    """Every counter (or those named), summed over its shards."""
    query = sa.select(JobCounter.name, JobCounter.report, JobCounter.label,
                      sa.func.sum(JobCounter.value), sa.func.sum(JobCounter.seconds)
                      ).group_by(JobCounter.name, JobCounter.report, JobCounter.label)
    if names is not None:
        query = query.where(JobCounter.name.in_(list(names)))
    return {(n, r, lb): (int(v or 0), float(s or 0.0)) for n, r, lb, v, s in db.session.execute(query)}


def jobs_per_report_and_state() -> dict[str, dict[str, int]]:
    """Jobs in the table now, per report and state (every state present, zeros included)."""
    out: dict[str, dict[str, int]] = {}
    for (_, report, state), (value, _) in sorted(read_totals([IN_STATE]).items()):
        out.setdefault(report, {s.value: 0 for s in JobState})[state] = value
    return out


def jobs_per_state(report: str | None = None) -> dict[str, int]:
    """Jobs in the table now per state, over every report or one (every state present, zeros included)."""
    counts = {s.value: 0 for s in JobState}
    for name, row in jobs_per_report_and_state().items():
        if report is None or name == report:
            for state, n in row.items():
                counts[state] += n
    return counts
