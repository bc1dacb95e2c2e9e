"""A job transaction's bookkeeping (events, counters, buckets, owners' lines) goes to PostgreSQL in one statement
at commit, in one lock order, and only if the transaction commits (real PostgreSQL)."""
from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import timedelta

import psycopg2
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.jobs import counters, slots
from app.jobs.counters import record_transition
from app.jobs.lifecycle import append_event
from app.jobs.models import Job, JobEvent, utcnow
from app.jobs.slots import OwnerQueue
from app.jobs.states import JobState
from app.jobs.throughput import JobFinishedBucket
from app.jobs.upsert import Write, write_all
from tests.helpers import wait_for


@contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL sent to PostgreSQL inside the block."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _job(owner: str, report: str) -> Job:
    job = Job(owner=owner, report=report, params={}, created_at=utcnow())
    db.session.add(job)
    db.session.commit()
    return job


def _cleanup(owners: list[str], reports: list[str]) -> None:
    db.session.rollback()
    db.session.execute(sa.delete(Job).where(Job.owner.in_(owners)))
    db.session.execute(sa.delete(OwnerQueue).where(OwnerQueue.owner.in_(owners)))
    db.session.execute(sa.delete(counters.JobCounter).where(counters.JobCounter.report.in_(reports)))
    db.session.commit()


def test_events_counters_buckets_and_owners_go_in_one_statement(app):
    owner, report = f"user:bk-{_tag()}", f"bk-{_tag()}"
    with app.app_context():
        job = _job(owner, report)
        try:
            job.state, job.started_at, job.finished_at = JobState.SUCCEEDED.value, utcnow(), utcnow()
            record_transition(job, JobState.ENQUEUED, JobState.SUCCEEDED)
            append_event(job, "progress", "half way")
            append_event(job, "state", "done")
            slots.mark_served(owner, utcnow())
            with _statements() as sent:
                db.session.commit()
            bookkeeping = [s for s in sent if "job_events" in s or "job_counters" in s or "owner_queues" in s]
            assert len(bookkeeping) == 1, sent
            assert bookkeeping[0].startswith("WITH w0 AS (INSERT INTO job_events")
            events = db.session.execute(sa.select(JobEvent.seq, JobEvent.kind, JobEvent.message)
                                        .where(JobEvent.job_id == job.id).order_by(JobEvent.seq)).all()
            assert [tuple(e) for e in events] == [(1, "progress", "half way"), (2, "state", "done")]
            totals = counters.read_totals()
            assert totals[("finished", report, "Succeeded")][0] == 1
            assert totals[("in_state", report, "Succeeded")][0] == 1
            buckets = db.session.execute(sa.select(sa.func.sum(JobFinishedBucket.value)).where(
                JobFinishedBucket.state == "Succeeded",
                JobFinishedBucket.start >= utcnow() - timedelta(days=1))).scalar_one()
            assert buckets >= 2  # this job's minute and day, at least
            assert db.session.get(OwnerQueue, owner).served_at is not None
        finally:
            _cleanup([owner], [report])


def test_a_rolled_back_transaction_leaves_no_event(app):
    owner, report = f"user:bk-{_tag()}", f"bk-{_tag()}"
    with app.app_context():
        job = _job(owner, report)
        try:
            append_event(job, "log", "never happened")
            db.session.rollback()
            append_event(job, "log", "happened")
            db.session.commit()
            kept = db.session.execute(sa.select(JobEvent.message).where(JobEvent.job_id == job.id)).scalars().all()
            assert kept == ["happened"]
        finally:
            _cleanup([owner], [report])


@pytest.mark.parametrize("counters_first", [True, False])
def test_writes_lock_their_rows_in_the_order_given(app, counters_first):
    """While the owners' row is held elsewhere, the statement waits there: having already locked the counter row
    when the counters come first, and not yet when they come second."""
    owner, report = f"user:bk-{_tag()}", f"bk-{_tag()}"
    key = {"name": "created", "report": report, "label": "", "shard": 0}
    counter = Write(counters.JobCounter.__table__, [{**key, "value": 1, "seconds": 0.0}], ("value", "seconds"))
    line = Write(OwnerQueue.__table__, [{"owner": owner, "waiting": 1, "inflight": 0, "served_at": None}],
                 ("waiting", "inflight"), ("served_at",))
    with app.app_context():
        write_all(db.session, [counter, line])  # both rows exist, committed
        db.session.commit()
        holder, prober = db.engine.raw_connection(), db.engine.raw_connection()
        done: list[BaseException | None] = []

        def write() -> None:
            with app.app_context():
                try:
                    write_all(db.session, [counter, line] if counters_first else [line, counter])
                    db.session.commit()
                    done.append(None)
                except BaseException as exc:
                    done.append(exc)
                finally:
                    db.session.remove()

        try:
            holder.cursor().execute("SELECT 1 FROM owner_queues WHERE owner = %s FOR UPDATE", (owner,))
            writer = threading.Thread(target=write)
            writer.start()
            wait_for(lambda: _waiting_on_a_lock(prober), timeout=10)
            with pytest.raises(psycopg2.errors.LockNotAvailable) if counters_first else nullcontext():
                prober.cursor().execute("SELECT 1 FROM job_counters WHERE name = %(name)s AND report = %(report)s"
                                        " AND label = %(label)s AND shard = %(shard)s FOR UPDATE NOWAIT", key)
            prober.rollback()
            holder.rollback()
            writer.join(10)
            assert done == [None]
            assert counters.read_totals()[("created", report, "")] == (2, 0.0)
        finally:
            holder.rollback()
            prober.rollback()
            holder.close()
            prober.close()
            _cleanup([owner], [report])


def _waiting_on_a_lock(conn) -> bool:
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND query LIKE %s", ("%INSERT INTO%",))
    waiting = cur.fetchone()[0] > 0
    conn.rollback()
    return waiting


def test_concurrent_writers_touching_counters_and_owners_never_deadlock(app):
    """Eight threads; each transaction counts two reports and serves two owners, both in random order."""
    tag = _tag()
    reports, owners, rounds, errors = [f"bk{i}-{tag}" for i in range(2)], [f"user:bk{i}-{tag}" for i in range(2)], 30, []

    def writer() -> None:
        with app.app_context():
            try:
                for _ in range(rounds):
                    for report in random.sample(reports, len(reports)):
                        record_transition(Job(report=report, created_at=utcnow()), None, JobState.ENQUEUED)
                    for owner in random.sample(owners, len(owners)):
                        slots.mark_served(owner, utcnow())
                    db.session.commit()
            except Exception as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    with app.app_context():
        try:
            assert not errors, errors
            totals = counters.read_totals()
            assert all(totals[("created", r, "")] == (8 * rounds, 0.0) for r in reports)
            assert all(db.session.get(OwnerQueue, o).served_at is not None for o in owners)
        finally:
            _cleanup(owners, reports)
