"""Purging finished jobs: roll up their counts, leave a tombstone, delete row, history and artifact.

The purge goes in batches, each its own short transaction that locks only expired finished rows
(``FOR UPDATE SKIP LOCKED``: a row someone else holds is left for the next run, never waited for), and
works set-based: one INSERT ... SELECT for the roll-up, one for the tombstones, one DELETE ... RETURNING
(events and result go with the row by ``ON DELETE CASCADE``), one counter update at commit.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.jobs.counters import record_transition
from app.jobs.models import Job, UTCDateTime, utcnow
from app.jobs.states import JobState
from app.retention.models import JobDailyCount, PurgedJob

log = logging.getLogger(__name__)

JOBS = Job.__table__
Cursor = tuple[datetime, uuid.UUID]  # (finished_at, id) of the last row a batch took


def max_ages() -> dict[str, timedelta]:
    """Retention per final state, from configuration."""
    cfg = current_app.config
    return {
        JobState.SUCCEEDED.value: timedelta(hours=cfg["LONGRUN_KEEP_SUCCEEDED_HOURS"]),
        JobState.CANCELLED.value: timedelta(hours=cfg["LONGRUN_KEEP_CANCELLED_HOURS"]),
        JobState.FAILED.value: timedelta(hours=cfg["LONGRUN_KEEP_FAILED_HOURS"]),
    }


@dataclass
class PurgeReport:
    """How many jobs were purged per state, in how many transactions, and whether work is left."""

    purged: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    batches: int = 0
    longest_batch: float = 0.0  # seconds: the longest transaction the purge held
    more: bool = False  # stopped by its time budget with expired jobs left

    @property
    def total(self) -> int:
        """All purged jobs."""
        return sum(self.purged.values())


def purge(now: datetime | None = None, dry_run: bool = False, *, budget: float | None = None,
          batch_size: int | None = None) -> PurgeReport:
    """Purge finished jobs older than their state's retention, one short transaction per batch.

    ``budget`` (seconds): start no new batch once it ran out, and say ``more`` if expired jobs may be left;
    the clock calls again, so a backlog of a million rows drains in slices while its other duties keep
    their periods. ``None``: go on until nothing is left (the CLI).
    """
    now = now or utcnow()
    if dry_run:
        return _count_expired(now)
    size = max(1, batch_size or current_app.config["LONGRUN_PURGE_BATCH"])  # 0 would never end
    deadline = None if budget is None else time.monotonic() + budget
    report = PurgeReport()
    for state, age in max_ages().items():
        _purge_state(report, state, now - age, now, size, deadline)
        if report.more:
            break
    if report.total:
        log.info("purged %s finished jobs in %s batches (longest transaction %.0f ms)%s: %s", report.total,
                 report.batches, report.longest_batch * 1000, ", more left" if report.more else "",
                 dict(report.purged))
    return report


def _purge_state(report: PurgeReport, state: str, cutoff: datetime, now: datetime, size: int,
                 deadline: float | None) -> None:
    """Purge the expired jobs of one state, batch after batch, until none is left or time is up.

    The budget is checked after a batch, so every call makes progress, even with no time left.
    """
    after: Cursor | None = None
    while True:
        started = time.monotonic()
        taken, after = purge_batch(state, cutoff, now, size, after)
        took = time.monotonic() - started
        if taken:
            report.batches += 1
            report.purged[state] += taken
            report.longest_batch = max(report.longest_batch, took)
            log.debug("purge batch: %s %s jobs in %.0f ms", taken, state, took * 1000)
        if taken < size:  # the range is exhausted (rows locked by others wait for the next run)
            return
        if deadline is not None and time.monotonic() >= deadline:
            report.more = True
            return


def purge_batch(state: str, cutoff: datetime, now: datetime, size: int, after: Cursor | None = None
                ) -> tuple[int, Cursor | None]:
    """Purge up to ``size`` jobs in ``state`` finished before ``cutoff``, in one transaction.

    ``after``: the cursor the previous batch returned. Walking on from it, instead of from the oldest
    expired row again, keeps each batch from re-reading the index entries of rows the previous batches
    deleted (they stay until VACUUM), so batch 1,000 costs what batch 1 did.
    """
    rows = db.session.execute(_expired(state, cutoff, size, after)).all()
    if not rows:
        db.session.rollback()
        return 0, after
    ids = [row.id for row in rows]
    db.session.execute(_roll_up(ids))
    db.session.execute(_tombstones(ids, now))
    removed = db.session.execute(sa.delete(JOBS).where(JOBS.c.id.in_(ids)).returning(JOBS.c.report)).all()
    _count_removed(Counter(row.report for row in removed), JobState(state))
    db.session.commit()  # roll-up, tombstones, deletes and counters land together or not at all
    return len(rows), (rows[-1].finished_at, rows[-1].id)


def _expired(state: str, cutoff: datetime, size: int, after: Cursor | None) -> sa.Select:
    """The next ``size`` expired jobs of ``state``, oldest first, locked; rows others hold are skipped."""
    query = sa.select(JOBS.c.id, JOBS.c.finished_at).where(JOBS.c.state == state, JOBS.c.finished_at < cutoff)
    if after is not None:
        # The plain bound lets an index on finished_at start at the cursor; the pair breaks ties exactly.
        query = query.where(JOBS.c.finished_at >= after[0],
                            sa.tuple_(JOBS.c.finished_at, JOBS.c.id) > sa.tuple_(*after))
    return query.order_by(JOBS.c.finished_at, JOBS.c.id).limit(size).with_for_update(skip_locked=True)


def _insert(table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ON CONFLICT, in the session's dialect."""
    return (postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


def _utc_day(column: sa.ColumnElement) -> sa.ColumnElement:
    """The UTC calendar day of a timestamp, in SQL (the session time zone must not move a job's day)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)  # SQLite keeps UTC text


def _roll_up(ids: list[uuid.UUID]) -> sa.Insert:
    """Add the batch's jobs to the daily counts that the per-day throughput chart reads (one statement)."""
    daily = JobDailyCount.__table__
    day = _utc_day(JOBS.c.finished_at)
    # Sorted, so two purges adding to the same days lock those rows in the same order.
    per_day = (sa.select(day, JOBS.c.report, JOBS.c.state, sa.func.count()).where(JOBS.c.id.in_(ids))
               .group_by(day, JOBS.c.report, JOBS.c.state).order_by(day, JOBS.c.report, JOBS.c.state))
    stmt = _insert(daily).from_select(["day", "report", "state", "jobs"], per_day)
    return stmt.on_conflict_do_update(index_elements=[daily.c.day, daily.c.report, daily.c.state],
                                      set_={"jobs": daily.c.jobs + stmt.excluded.jobs})


def _tombstones(ids: list[uuid.UUID], now: datetime) -> sa.Insert:
    """Tombstones for the batch's jobs, so their ids answer 410 Gone to their owners (one statement)."""
    gone = PurgedJob.__table__
    rows = sa.select(JOBS.c.id, JOBS.c.owner, JOBS.c.report, JOBS.c.state, JOBS.c.finished_at,
                     sa.literal(now, UTCDateTime), sa.literal("retention")).where(JOBS.c.id.in_(ids))
    stmt = _insert(gone).from_select(["id", "owner", "report", "state", "finished_at", "purged_at", "reason"], rows)
    return stmt.on_conflict_do_nothing(index_elements=[gone.c.id])  # ids are UUIDs: a clash is a re-run


def _count_removed(per_report: Counter[str], state: JobState) -> None:
    """Lower the jobs-per-state gauge for the removed jobs; no total ever falls (counted at commit)."""
    for report, n in per_report.items():
        # The counters define what a removal does (record_transition(job, state, None)); a transient job
        # carries the report. The calls only add up in memory: one upsert per batch writes them at commit.
        gone = Job(report=report)
        for _ in range(n):
            record_transition(gone, state, None)


def _count_expired(now: datetime) -> PurgeReport:
    """What a purge would remove now, per state (counted, nothing changed)."""
    report = PurgeReport()
    for state, age in max_ages().items():
        report.purged[state] = db.session.execute(
            sa.select(sa.func.count()).select_from(JOBS).where(JOBS.c.state == state,
                                                               JOBS.c.finished_at < now - age)
        ).scalar_one()
    db.session.rollback()
    return report


def tombstone(job: Job, reason: str, now: datetime | None = None) -> None:
    """Record that ``job`` existed, so its id answers 410 Gone to its owner."""
    db.session.merge(PurgedJob(id=job.id, owner=job.owner, report=job.report, state=job.state,
                               finished_at=job.finished_at, purged_at=now or utcnow(), reason=reason))
