"""One purge batch: up to N expired jobs of one state rolled up, tombstoned and deleted in one short transaction.

Set-based: on PostgreSQL the whole batch is one statement (lock, delete, tombstones, roll-up), so the rows
are read once and never travel to Python; SQLite has no data-modifying CTEs, so there the same INSERT ...
SELECTs run before a DELETE (it has one writer at a time, so nothing changes in between). Events and the
result go with their job by ``ON DELETE CASCADE``.
"""
from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.jobs.counters import record_transition
from app.jobs.models import Job, UTCDateTime
from app.jobs.states import JobState
from app.retention.models import JobDailyCount, PurgedJob

JOBS = Job.__table__
Cursor = tuple[datetime, uuid.UUID]  # (finished_at, id) of the last row a batch took
Removed = list[tuple[str, int, datetime, uuid.UUID]]  # per report: jobs removed, the last one's (finished_at, id)
TOMBSTONE = ("id", "owner", "report", "state", "finished_at")  # what a tombstone keeps of a job


def purge_batch(state: str, cutoff: datetime, now: datetime, size: int, after: Cursor | None = None
                ) -> tuple[int, Cursor | None]:
    """Purge up to ``size`` jobs in ``state`` finished before ``cutoff``, in one transaction: (taken, cursor).

    ``after``: the cursor the previous batch returned. Walking on from it, instead of from the oldest
    expired row again, keeps each batch from re-reading the index entries of the rows earlier batches
    deleted (they stay until VACUUM), so batch 1,000 costs what batch 1 did.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        removed = _postgresql(state, cutoff, now, size, after)
    else:
        removed = _one_writer(state, cutoff, now, size, after)
    if not removed:
        db.session.rollback()
        return 0, after
    _count_removed(Counter({report: n for report, n, _, _ in removed}), JobState(state))
    db.session.commit()  # roll-up, tombstones, deletes and counters land together or not at all
    return sum(n for _, n, _, _ in removed), max((finished, job_id) for _, _, finished, job_id in removed)


def _expired(state: str, cutoff: datetime, size: int, after: Cursor | None) -> sa.Select:
    """The next ``size`` expired jobs of ``state``, oldest first, locked; rows others hold are skipped."""
    query = sa.select(JOBS.c.id).where(JOBS.c.state == state, JOBS.c.finished_at < cutoff)
    if after is not None:
        # The plain bound lets the (state, finished_at) index start at the cursor; the pair breaks ties.
        query = query.where(JOBS.c.finished_at >= after[0],
                            sa.tuple_(JOBS.c.finished_at, JOBS.c.id) > sa.tuple_(*after))
    return query.order_by(JOBS.c.finished_at, JOBS.c.id).limit(size).with_for_update(skip_locked=True)


def _postgresql(state: str, cutoff: datetime, now: datetime, size: int, after: Cursor | None) -> Removed:
    """Lock, delete, tombstone and roll up in one statement; what it removed per report."""
    doomed = _expired(state, cutoff, size, after).cte("doomed")
    gone = (sa.delete(JOBS).where(JOBS.c.id.in_(sa.select(doomed.c.id)))
            .returning(*(JOBS.c[c] for c in TOMBSTONE)).cte("gone"))
    stones = _tombstones(gone, now, postgresql.insert).cte("stones")
    days = _roll_up(gone, postgresql.insert, _utc_day_postgresql).cte("days")
    newest = postgresql.aggregate_order_by(gone.c.id, gone.c.finished_at.desc(), gone.c.id.desc())
    per_report = sa.select(gone.c.report, sa.func.count(), sa.func.max(gone.c.finished_at),
                           sa.func.array_agg(newest, type_=postgresql.ARRAY(sa.Uuid))[1]).group_by(gone.c.report)
    return [tuple(row) for row in db.session.execute(per_report.add_cte(stones, days))]


def _one_writer(state: str, cutoff: datetime, now: datetime, size: int, after: Cursor | None) -> Removed:
    """The same as separate statements, for SQLite: roll-up and tombstones from the rows, then the delete."""
    ids = list(db.session.execute(_expired(state, cutoff, size, after)).scalars())
    if not ids:
        return []
    source = sa.select(*(JOBS.c[c] for c in TOMBSTONE)).where(JOBS.c.id.in_(ids)).subquery()
    db.session.execute(_roll_up(source, sqlite.insert, sa.func.date))  # SQLite stores UTC text: date() is the day
    db.session.execute(_tombstones(source, now, sqlite.insert))
    rows = db.session.execute(sa.delete(JOBS).where(JOBS.c.id.in_(ids))
                              .returning(JOBS.c.report, JOBS.c.finished_at, JOBS.c.id)).all()
    per_report: dict[str, tuple[int, Cursor]] = {}
    for report, finished, job_id in rows:
        n, last = per_report.get(report, (0, (finished, job_id)))
        per_report[report] = (n + 1, max(last, (finished, job_id)))
    return [(report, n, *last) for report, (n, last) in per_report.items()]


def _utc_day_postgresql(column: sa.ColumnElement) -> sa.ColumnElement:
    """The UTC calendar day of a timestamp (the session's time zone must not move a job's day)."""
    return sa.cast(sa.func.timezone("UTC", column), sa.Date)


def _roll_up(source: sa.FromClause, insert, utc_day) -> sa.Insert:
    """Add the batch's jobs to the daily counts per UTC day, report and final state (one statement)."""
    daily = JobDailyCount.__table__
    day = utc_day(source.c.finished_at)
    # Sorted, so two purges adding to the same days lock those rows in the same order.
    per_day = (sa.select(day, source.c.report, source.c.state, sa.func.count())
               .group_by(day, source.c.report, source.c.state).order_by(day, source.c.report, source.c.state))
    stmt = insert(daily).from_select(["day", "report", "state", "jobs"], per_day)
    return stmt.on_conflict_do_update(index_elements=[daily.c.day, daily.c.report, daily.c.state],
                                      set_={"jobs": daily.c.jobs + stmt.excluded.jobs})


def _tombstones(source: sa.FromClause, now: datetime, insert) -> sa.Insert:
    """Tombstones for the batch's jobs, so their ids answer 410 Gone to their owners (one statement)."""
    gone = PurgedJob.__table__
    # WHERE true: SQLite would read "FROM source ON CONFLICT" as the start of a join.
    rows = sa.select(*(source.c[c] for c in TOMBSTONE), sa.literal(now, UTCDateTime),
                     sa.literal("retention")).where(sa.true())
    stmt = insert(gone).from_select([*TOMBSTONE, "purged_at", "reason"], rows)
    return stmt.on_conflict_do_nothing(index_elements=[gone.c.id])  # ids are UUIDs: a clash is a re-run


def _count_removed(per_report: Counter[str], state: JobState) -> None:
    """Lower the jobs-per-state gauge for the removed jobs; no total ever falls (written at commit)."""
    for report, n in per_report.items():
        # The counters define what a removal does (record_transition(job, state, None)); a transient job
        # carries the report. The calls only add up in memory: one upsert per batch writes them at commit.
        gone = Job(report=report)
        for _ in range(n):
            record_transition(gone, state, None)
