"""Batched purge: thousands of expired jobs go in many short transactions; live and recent jobs stay untouched,
rows other transactions hold are skipped (never waited for), and counters, roll-ups and tombstones come out exact."""
from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from app.clock.runner import Duty, run_due
from app.extensions import db
from app.jobs import counters
from app.jobs.counters import record_transition
from app.jobs.models import Job, JobEvent, JobResult, utcnow
from app.jobs.states import JobState
from app.retention.models import JobDailyCount, PurgedJob
from app.retention.purge import purge, purged_job
from tests.conftest import PG_ADMIN_URL, TEST_DB, _recreate_database

NOW = utcnow().replace(microsecond=0)
HOUR = timedelta(hours=1)
BATCH = 300

# (state, finished how long ago, how many): default retention is 24 h succeeded, 72 h cancelled, 168 h failed.
EXPIRED = [("Succeeded", 50 * HOUR, 700), ("Succeeded", 30 * HOUR, 500), ("Failed", 200 * HOUR, 500),
           ("Cancelled", 80 * HOUR, 300)]
KEPT = [("Succeeded", 1 * HOUR, 150), ("Failed", 100 * HOUR, 150), ("Cancelled", 48 * HOUR, 100)]
# Live jobs, some created long ago: a job's age never makes it purgeable, only a final state does.
LIVE = [("Enqueued", None, 40), ("Processing", None, 40), ("Retrying", None, 20)]
EXPIRED_TOTAL = sum(n for _, _, n in EXPIRED)
# The columns the seed writes (a lightweight table: columns added later by other migrations keep their defaults).
SEEDED = sa.table("jobs", *(sa.column(c) for c in ("owner", "report", "state", "api_version", "progress", "attempts",
                                                   "max_attempts", "cancel_requested", "last_seq")),
                  sa.column("id", sa.Uuid), sa.column("params", sa.JSON), sa.column("created_at", sa.DateTime(True)),
                  sa.column("updated_at", sa.DateTime(True)), sa.column("started_at", sa.DateTime(True)),
                  sa.column("finished_at", sa.DateTime(True)))


def _app_on(url: str):
    """An app on a database of its own, migrated, with nothing in it (exact counts, no other test's jobs)."""
    from flask_migrate import upgrade

    from app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "LONGRUN_PURGE_BATCH": BATCH, "LONGRUN_PURGE_DUTY_CYCLE": 1.0})
    with app.app_context():
        upgrade()
        yield app
        db.session.remove()
        db.engine.dispose()


def _postgres_url() -> str:
    _recreate_database(f"{TEST_DB}_purge")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{TEST_DB}_purge"


@pytest.fixture(params=["postgresql", "sqlite"])
def purge_app(request, tmp_path):
    """The purge's own database, on PostgreSQL and on SQLite (the embedded default)."""
    yield from _app_on(_postgres_url() if request.param == "postgresql" else f"sqlite:///{tmp_path / 'purge.db'}")


@pytest.fixture
def pg_purge_app():
    """The purge's own PostgreSQL database (row locks are PostgreSQL's; SQLite has one writer at a time)."""
    yield from _app_on(_postgres_url())


def _seed(plan: list[tuple[str, timedelta | None, int]], report_for=lambda i: ("demo", "sales_summary")[i % 2]
          ) -> list[dict]:
    """Jobs as the lifecycle leaves them (3 events each, a result when succeeded), counted like born in their state."""
    jobs, events, results = [], [], []
    for state, ago, n in plan:
        for i in range(n):
            finished = NOW - ago - timedelta(seconds=i) if ago is not None else None
            created = (finished or NOW - 60 * HOUR) - timedelta(seconds=30)
            job = dict(id=uuid.uuid4(), owner=f"user:{i % 7}", report=report_for(i), params={"n": i}, state=state,
                       api_version="v2", progress=1.0, attempts=1, max_attempts=3, cancel_requested=False,
                       last_seq=3, created_at=created, updated_at=finished or created,
                       started_at=created + timedelta(seconds=10), finished_at=finished)
            jobs.append(job)
            events += [dict(job_id=job["id"], seq=s, kind="state", state=state, progress=0.0, message=f"e{s}",
                            attempt=1, created_at=created) for s in (1, 2, 3)]
            if state == "Succeeded":
                results.append(dict(job_id=job["id"], filename="r.txt", content_type="text/plain", size=2,
                                    content=b"ok", created_at=created))
    db.session.execute(sa.insert(SEEDED), jobs)
    db.session.execute(sa.insert(JobEvent.__table__), events)
    if results:
        db.session.execute(sa.insert(JobResult.__table__), results)
    for job in jobs:
        record_transition(Job(**job), None, JobState(job["state"]))  # as if born in its state
    db.session.commit()
    return jobs


def _snapshot(ids: list[uuid.UUID]) -> dict:
    """Every column of these jobs, with their event and result counts."""
    rows = {r.id: tuple(r) for r in db.session.execute(sa.select(SEEDED).where(SEEDED.c.id.in_(ids)))}
    events = dict(db.session.execute(sa.select(JobEvent.job_id, sa.func.count()).where(JobEvent.job_id.in_(ids))
                                     .group_by(JobEvent.job_id)).all())
    results = set(db.session.execute(sa.select(JobResult.job_id).where(JobResult.job_id.in_(ids))).scalars())
    return {"rows": rows, "events": events, "results": results}


def _gauges() -> dict[tuple[str, str], int]:
    return {(r, s): n for r, row in counters.jobs_per_report_and_state().items() for s, n in row.items() if n}


def _table_counts() -> dict[tuple[str, str], int]:
    return {(r, s): n for r, s, n in db.session.execute(
        sa.select(Job.report, Job.state, sa.func.count()).group_by(Job.report, Job.state))}


def test_purge_in_batches_leaves_live_jobs_and_counts_everything(purge_app):
    expired, kept = _seed(EXPIRED), _seed(KEPT + LIVE)
    kept_ids = [j["id"] for j in kept]
    before = _snapshot(kept_ids)
    totals_before = {k: v for k, v in counters.read_totals().items() if k[0] != counters.IN_STATE}
    # One day already holds purged jobs: the roll-up adds to it instead of overwriting it.
    old_day = (NOW - 50 * HOUR).date()
    db.session.add(JobDailyCount(day=old_day, report="demo", state="Succeeded", jobs=1000))
    db.session.commit()

    report = purge(NOW)

    assert report.total == EXPIRED_TOTAL and not report.more
    assert dict(report.purged) == {"Succeeded": 1200, "Failed": 500, "Cancelled": 300}
    assert report.batches >= 4 + 2 + 1  # ceil(1200/300) + ceil(500/300) + ceil(300/300): many short transactions
    # Live and recent jobs: every column, every event and every result exactly as they were.
    assert _snapshot(kept_ids) == before
    assert db.session.execute(sa.select(sa.func.count()).select_from(Job)).scalar_one() == len(kept)
    gone = [j["id"] for j in expired]
    assert not db.session.execute(sa.select(JobEvent.id).where(JobEvent.job_id.in_(gone))).first()
    assert not db.session.execute(sa.select(JobResult.job_id).where(JobResult.job_id.in_(gone))).first()
    # Tombstones: one per purged job, saying what it was; its owner gets it (410), nobody else does.
    stones = {p.id: p for p in db.session.execute(sa.select(PurgedJob)).scalars()}
    assert set(stones) == set(gone)
    for job in expired[:50] + expired[-50:]:
        stone = stones[job["id"]]
        assert (stone.owner, stone.report, stone.state, stone.finished_at, stone.reason, stone.purged_at) == (
            job["owner"], job["report"], job["state"], job["finished_at"], "retention", NOW)
        assert purged_job(job["owner"], str(job["id"])) is not None
        assert purged_job("user:someone-else", str(job["id"])) is None
    # Daily roll-up: exactly the purged jobs per UTC day, report and state, added to what was there.
    want = Counter((j["finished_at"].date(), j["report"], j["state"]) for j in expired)
    want[(old_day, "demo", "Succeeded")] += 1000
    got = {(r.day, r.report, r.state): r.jobs for r in db.session.execute(sa.select(JobDailyCount)).scalars()}
    assert got == dict(want)
    # Counters: the per-state gauge matches the table again; no total moved.
    assert _gauges() == _table_counts()
    assert {k: v for k, v in counters.read_totals().items() if k[0] != counters.IN_STATE} == totals_before

    again = purge(NOW)
    assert again.total == 0 and again.batches == 0


def test_a_budgeted_purge_stops_and_the_next_call_goes_on(purge_app):
    _seed(EXPIRED)
    kept = _seed(KEPT)
    calls, purged = 0, 0
    while True:
        calls += 1
        step = purge(NOW, budget=0)  # every call still makes progress: at least one batch
        purged += step.total
        assert step.batches <= 3  # with no time left: one batch per state at most
        if not step.more:
            break
        assert calls < 50
    assert purged == EXPIRED_TOTAL and calls > 3
    assert db.session.execute(sa.select(sa.func.count()).select_from(Job)).scalar_one() == len(kept)
    assert _gauges() == _table_counts()


def test_the_clock_runs_a_duty_with_work_left_again_at_once(purge_app):
    assert run_due(purge_app, Duty("t-more", 3600, lambda: SimpleNamespace(more=True))) is True
    assert run_due(purge_app, Duty("t-done", 3600, lambda: SimpleNamespace(more=False))) is False
    assert run_due(purge_app, Duty("t-none", 3600, lambda: None)) is False


def _hold_row_lock(url: str, job_id: uuid.UUID, locked: threading.Event, release: threading.Event) -> None:
    """Another transaction (a retry, say) holds one expired job's row until told to let go."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT 1 FROM jobs WHERE id = :id FOR UPDATE"), {"id": job_id})
            locked.set()
            release.wait(30)
    finally:
        engine.dispose()


def test_rows_held_by_others_are_skipped_not_waited_for(pg_purge_app):
    expired = _seed(EXPIRED[:1])
    held = expired[BATCH + 5]["id"]  # in the middle of the second batch
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_row_lock,
                              args=(db.engine.url.render_as_string(hide_password=False), held, locked, release))
    holder.start()
    try:
        assert locked.wait(10)
        report = purge(NOW)  # had it waited for the row, the holder would have let go and the row be gone
        assert report.total == len(expired) - 1
        left = db.session.execute(sa.select(Job.id)).scalars().all()
        assert left == [held]
        assert _gauges() == _table_counts()
    finally:
        release.set()
        holder.join(10)
    assert purge(NOW).total == 1  # the next run takes it
    assert not db.session.execute(sa.select(Job.id)).first()
    assert _gauges() == _table_counts()


def test_a_sliced_pass_goes_on_where_it_stopped_and_the_next_pass_takes_what_it_skipped(pg_purge_app):
    expired = _seed(EXPIRED[:1])  # 700 jobs: batches of 300
    held = sorted(expired, key=lambda j: (j["finished_at"], j["id"]))[5]["id"]  # in the first batch
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_row_lock,
                              args=(db.engine.url.render_as_string(hide_password=False), held, locked, release))
    holder.start()
    try:
        assert locked.wait(10)
        first = purge(NOW, budget=0)
        assert first.total == BATCH and first.more  # the held row skipped, the batch filled past it
    finally:
        release.set()
        holder.join(10)
    while purge(NOW, budget=0).more:  # the rest of this pass, each call from where the last one stopped
        pass
    left = db.session.execute(sa.select(Job.id)).scalars().all()
    assert left == [held]  # behind the place the pass went on from: not looked at again in this pass
    assert purge(NOW, budget=0).total == 1  # the pass ended; the next starts at the oldest again
    assert _gauges() == _table_counts()
