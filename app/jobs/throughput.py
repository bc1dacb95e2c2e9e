"""Finished jobs per minute and per day, counted at write time, so the dashboard's charts read no job row.

Part of the counters (app/jobs/counters.py writes these rows in the same statement batch, the same shard
scheme): a chart reads at most buckets x states x shards rows, whatever the history.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.jobs.models import Job, UTCDateTime, utcnow
from app.jobs.states import JobState
from app.jobs.upsert import Write

UNITS: dict[str, timedelta] = {"minute": timedelta(minutes=1), "day": timedelta(days=1)}
# Minute buckets older than this are dropped by the clock every PRUNE_SECONDS (the chart shows the last hour);
# day buckets stay (a few rows a day).
KEEP_MINUTES = timedelta(hours=2)
PRUNE_SECONDS = 600.0

BucketKey = tuple[str, datetime, str]  # (unit, start, state)


class JobFinishedBucket(db.Model):
    """One shard of the number of jobs that reached a final state within one minute or one day (UTC)."""

    __tablename__ = "job_finished_buckets"

    unit: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    state: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger)


def bucket_start(moment: datetime, unit: str) -> datetime:
    """The start of the minute or UTC day holding ``moment``."""
    if unit == "minute":
        return moment.replace(second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_deltas(job: Job, new: JobState | None) -> dict[BucketKey, int]:
    """What ``job`` entering ``new`` adds to the buckets: one per unit when it finishes, else nothing."""
    if new is None or not new.is_final:
        return {}
    moment = job.finished_at or utcnow()
    return {(unit, bucket_start(moment, unit), new.value): 1 for unit in UNITS}


def write(rows: list[dict]) -> Write:
    """The write that adds ``rows`` (unit, start, state, shard, value) to what the buckets hold."""
    return Write(JobFinishedBucket.__table__, rows, ("value",))


def finished_since(unit: str, start: datetime) -> dict[tuple[datetime, str], int]:
    """Jobs finished per bucket and final state from ``start`` on (a primary-key range, summed over shards)."""
    b = JobFinishedBucket
    rows = db.session.execute(
        sa.select(b.start, b.state, sa.func.sum(b.value)).where(b.unit == unit, b.start >= start)
        .group_by(b.start, b.state)
    ).all()
    return {(moment, state): int(n) for moment, state, n in rows}


def prune(now: datetime | None = None) -> int:
    """Drop minute buckets the chart no longer shows; how many rows went."""
    cutoff = (now or utcnow()) - KEEP_MINUTES
    b = JobFinishedBucket
    gone = db.session.execute(sa.delete(b).where(b.unit == "minute", b.start < cutoff)).rowcount
    db.session.commit()
    return gone
