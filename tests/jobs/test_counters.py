"""Counters kept at write time: what each move adds, exact under concurrency, on SQLite, and the upgrade backfill."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.jobs import counters
from app.jobs.counters import record_transition, transition_deltas
from app.jobs.models import Job, utcnow
from app.jobs.states import JobState
from tests.conftest import PG_ADMIN_URL, ROOT, TEST_DB, _recreate_database

E, P, R, S, F, C = (JobState.ENQUEUED, JobState.PROCESSING, JobState.RETRYING, JobState.SUCCEEDED,
                    JobState.FAILED, JobState.CANCELLED)


def _job(report: str = "demo", wait: float = 2.0, took: float | None = 40.0) -> Job:
    created = utcnow()
    started = created + timedelta(seconds=wait)
    return Job(report=report, created_at=created, started_at=started,
               finished_at=started + timedelta(seconds=took) if took is not None else None)


def test_each_move_adds_what_it_means():
    job = _job()
    assert transition_deltas(job, None, E) == {("created", "demo", ""): (1, 0.0), ("in_state", "demo", "Enqueued"): (1, 0.0)}
    first = transition_deltas(job, E, P, first_start=True)
    assert first == {("in_state", "demo", "Enqueued"): (-1, 0.0), ("in_state", "demo", "Processing"): (1, 0.0),
                     ("attempts", "demo", ""): (1, 0.0), ("started", "demo", ""): (1, 0.0),
                     ("queue_wait", "demo", "2.5"): (1, 2.0)}
    # A later attempt is an attempt, not a start; a redelivery (Processing -> Processing) moves no gauge.
    assert transition_deltas(job, R, P) == {("in_state", "demo", "Retrying"): (-1, 0.0),
                                            ("in_state", "demo", "Processing"): (1, 0.0), ("attempts", "demo", ""): (1, 0.0)}
    assert transition_deltas(job, P, P) == {("attempts", "demo", ""): (1, 0.0)}
    assert transition_deltas(job, P, S) == {("in_state", "demo", "Processing"): (-1, 0.0),
                                            ("in_state", "demo", "Succeeded"): (1, 0.0),
                                            ("finished", "demo", "Succeeded"): (1, 0.0), ("duration", "demo", "60"): (1, 40.0)}
    never_ran = _job(took=None)
    never_ran.started_at = None
    assert transition_deltas(never_ran, E, C) == {("in_state", "demo", "Enqueued"): (-1, 0.0),
                                                  ("in_state", "demo", "Cancelled"): (1, 0.0),
                                                  ("finished", "demo", "Cancelled"): (1, 0.0)}


@pytest.mark.parametrize("old, new", [(F, E), (C, E), (S, None), (F, None), (C, None)])
def test_retry_and_removal_only_move_the_state_gauge(old, new):
    deltas = transition_deltas(_job(), old, new)
    assert {name for name, _, _ in deltas} == {"in_state"}
    assert deltas[("in_state", "demo", old.value)] == (-1, 0.0)


def test_every_move_of_the_lifecycle_leaves_totals_growing():
    for old in [None, *JobState]:
        for new in [None, *JobState]:
            for key, (value, seconds) in transition_deltas(_job(), old, new, first_start=True).items():
                if key[0] != counters.IN_STATE:
                    assert value >= 0 and seconds >= 0, (old, new, key)


def test_bucket_labels_match_the_histogram_bounds():
    assert [counters.bucket_label(s) for s in (0, 0.1, 0.11, 1, 3599, 3600.5)] == ["0.1", "0.1", "0.5", "1", "3600", "+Inf"]


def _reports(n: int = 2) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"ctr{i}-{tag}" for i in range(n)]


def _drop_counters(reports: list[str]) -> None:
    db.session.execute(sa.delete(counters.JobCounter).where(counters.JobCounter.report.in_(reports)))
    db.session.commit()


def test_concurrent_writers_lose_nothing_and_never_deadlock(app):
    """Eight threads, each transaction counting two reports in random order: sums exact, no deadlock."""
    reports, rounds, errors = _reports(), 40, []

    def writer() -> None:
        with app.app_context():
            try:
                for _ in range(rounds):
                    for report in random.sample(reports, len(reports)):
                        record_transition(_job(report), None, E)
                        record_transition(_job(report), E, P, first_start=True)
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
            for report in reports:
                assert totals[("created", report, "")] == (8 * rounds, 0.0)
                assert totals[("attempts", report, "")][0] == 8 * rounds
                assert counters.jobs_per_state(report) == {**{s.value: 0 for s in JobState}, "Enqueued": 0,
                                                           "Processing": 8 * rounds}
            shards = db.session.execute(sa.select(sa.func.count(sa.distinct(counters.JobCounter.shard)))
                                        .where(counters.JobCounter.report == reports[0])).scalar_one()
            assert 1 < shards <= counters.SHARDS  # spread over shards, bounded
        finally:
            _drop_counters(reports)


def test_a_rolled_back_transaction_counts_nothing(app):
    [report] = _reports(1)
    with app.app_context():
        record_transition(_job(report), None, E)
        db.session.rollback()
        record_transition(_job(report), None, E)
        db.session.commit()
        try:
            assert counters.read_totals()[("created", report, "")] == (1, 0.0)
        finally:
            _drop_counters([report])


def test_the_lifecycle_keeps_counters_on_sqlite(tmp_path):
    """The embedded default: the same upsert, through the real transition and delete paths."""
    from flask_migrate import upgrade

    from app import create_app
    from app.jobs.lifecycle import transition
    from app.retention.purge import delete_job

    lite = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'counters.db'}"})
    with lite.app_context():
        upgrade()
        job = Job(id=uuid.uuid4(), owner="user:lite", report="demo", params={}, state="Enqueued", last_seq=0,
                  progress=0.0, attempts=0)
        db.session.add(job)
        record_transition(job, None, E)
        db.session.commit()
        bump = lambda j: setattr(j, "attempts", j.attempts + 1)  # noqa: E731
        for target, update in ((P, bump), (R, None), (P, bump), (F, None), (E, None), (P, bump), (S, None)):
            transition(job.id, target, f"to {target.value}", update=update)
        totals = counters.read_totals()
        assert totals[("created", "demo", "")][0] == 1 and totals[("started", "demo", "")][0] == 1
        assert totals[("attempts", "demo", "")][0] == 3
        assert totals[("finished", "demo", "Failed")][0] == 1 and totals[("finished", "demo", "Succeeded")][0] == 1
        assert sum(v for (n, _, _), (v, _) in totals.items() if n == "duration") == 2
        assert sum(v for (n, _, _), (v, _) in totals.items() if n == "queue_wait") == 1
        assert counters.jobs_per_state()["Succeeded"] == 1
        delete_job(db.session.get(Job, job.id))
        assert set(counters.jobs_per_state().values()) == {0}
        assert counters.read_totals()[("finished", "demo", "Succeeded")][0] == 1  # deletion leaves totals alone


# -- the upgrade backfill ---------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
JOBS = sa.table("jobs", *(sa.column(c) for c in ("owner", "report", "state", "api_version", "progress", "attempts",
                                                 "max_attempts", "cancel_requested", "last_seq")),
                sa.column("id", sa.Uuid), sa.column("params", sa.JSON), sa.column("created_at", sa.DateTime(True)),
                sa.column("updated_at", sa.DateTime(True)), sa.column("started_at", sa.DateTime(True)),
                sa.column("finished_at", sa.DateTime(True)))
DAILY = sa.table("job_daily_counts", *(sa.column(c) for c in ("day", "report", "state", "jobs", "attempts",
                                                              "duration_sum", "wait_sum")),
                 sa.column("duration_buckets", sa.JSON), sa.column("wait_buckets", sa.JSON))
PURGED = sa.table("purged_jobs", *(sa.column(c) for c in ("owner", "report", "state", "purged_at", "reason")),
                  sa.column("id", sa.Uuid))


def _seed_job(report: str, state: str, attempts: int, wait: float | None, took: float | None) -> dict:
    started = T0 + timedelta(seconds=wait) if wait is not None else None
    finished = (started or T0) + timedelta(seconds=took) if took is not None else None
    return {"id": uuid.uuid4(), "owner": "user:old", "report": report, "state": state, "api_version": "v2",
            "progress": 0.0, "attempts": attempts, "max_attempts": 3, "cancel_requested": False, "last_seq": 0,
            "params": {}, "created_at": T0, "updated_at": T0, "started_at": started, "finished_at": finished}


def _flask(url: str, *args: str) -> None:
    run = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:app", "db", *args], cwd=ROOT,
                         env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.fixture(params=["postgresql", "sqlite"])
def database_at_0002(request, tmp_path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'backfill.db'}"
    else:
        _recreate_database(f"{TEST_DB}_backfill")
        url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + f"/{TEST_DB}_backfill"
    _flask(url, "upgrade", "0002")
    return url


@pytest.mark.slow  # migrates two databases in subprocesses
def test_upgrade_backfills_counters_where_metrics_stood(database_at_0002):
    engine = sa.create_engine(database_at_0002)
    with engine.begin() as conn:
        conn.execute(sa.insert(JOBS), [
            _seed_job("demo", "Succeeded", 1, wait=2, took=40),
            _seed_job("demo", "Failed", 3, wait=0.05, took=0.3),
            _seed_job("demo", "Enqueued", 0, wait=None, took=None),
            _seed_job("demo", "Cancelled", 0, wait=None, took=1),
            _seed_job("sales_summary", "Processing", 1, wait=7000, took=None),
        ])
        conn.execute(sa.insert(DAILY), [{"day": T0.date(), "report": "demo", "state": "Succeeded", "jobs": 5,
                                         "attempts": 6, "duration_sum": 12.5, "wait_sum": 1.5,
                                         "duration_buckets": {"2.5": 5}, "wait_buckets": {"0.5": 5}}])
        conn.execute(sa.insert(PURGED), [{"id": uuid.uuid4(), "owner": "user:old", "report": "demo", "state": state,
                                          "purged_at": T0, "reason": reason}
                                         for state, reason in [("Succeeded", "retention")] * 5 + [("Failed", "operator")]])
    _flask(database_at_0002, "upgrade")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, report, label, sum(value), sum(seconds) FROM job_counters "
                                    "GROUP BY name, report, label")).all()
        leftover = {c["name"] for c in sa.inspect(conn).get_columns("job_daily_counts")}
    engine.dispose()
    got = {(n, r, lb): (int(v), round(float(s), 6)) for n, r, lb, v, s in rows}
    assert got == {
        ("created", "demo", ""): (10, 0.0), ("created", "sales_summary", ""): (1, 0.0),
        ("in_state", "demo", "Succeeded"): (1, 0.0), ("in_state", "demo", "Failed"): (1, 0.0),
        ("in_state", "demo", "Enqueued"): (1, 0.0), ("in_state", "demo", "Cancelled"): (1, 0.0),
        ("in_state", "sales_summary", "Processing"): (1, 0.0),
        ("finished", "demo", "Succeeded"): (6, 0.0), ("finished", "demo", "Failed"): (2, 0.0),
        ("finished", "demo", "Cancelled"): (1, 0.0),
        ("attempts", "demo", ""): (10, 0.0), ("attempts", "sales_summary", ""): (1, 0.0),
        ("started", "demo", ""): (7, 0.0), ("started", "sales_summary", ""): (1, 0.0),
        ("queue_wait", "demo", "2.5"): (1, 2.0), ("queue_wait", "demo", "0.1"): (1, 0.05),
        ("queue_wait", "demo", "0.5"): (5, 1.5), ("queue_wait", "sales_summary", "+Inf"): (1, 7000.0),
        ("duration", "demo", "60"): (1, 40.0), ("duration", "demo", "0.5"): (1, 0.3),
        ("duration", "demo", "2.5"): (5, 12.5),
    }
    assert leftover == {"day", "report", "state", "jobs"}
