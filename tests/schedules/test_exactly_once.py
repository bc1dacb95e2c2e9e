"""Exactly one job per schedule and slot: two real clock processes at once, a clock restarted mid-way, fire
passes racing without any advisory lock, a replayed slot; the database refuses a second job for a slot.
Also: the due lookup reads its partial index, whatever the number of schedules not due."""
from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tests.conftest import ClockProcess, isolated_database
from tests.helpers import wait_for

pytestmark = pytest.mark.slow  # starts clock processes

SCHEDULES = 60


@pytest.fixture(scope="module")
def db_url(app):
    """A database of its own: no other test's schedules or jobs, no worker (its jobs just wait)."""
    return isolated_database("sched")


@pytest.fixture(scope="module")
def other_app(db_url):
    from app import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": db_url})


def seed(other_app, count: int, due_in: float, cron: str = "* * * * *", misfire: str = "run_once") -> list[uuid.UUID]:
    """``count`` enabled schedules, each due ``due_in`` seconds from now."""
    from app.extensions import db
    from app.schedules.models import Schedule
    from app.schedules.service import create_schedule

    with other_app.app_context():
        ids = [create_schedule(f"user:load{i % 7}", {"report": "demo", "params": {}, "cron": cron, "timezone": "UTC",
                                                     "misfire": misfire}).id for i in range(count)]
        due = datetime.now(timezone.utc) + timedelta(seconds=due_in)
        db.session.execute(sa.update(Schedule).where(Schedule.id.in_(ids)).values(next_fire_at=due))
        db.session.commit()
    return ids


def slots_per_pair(db_url: str, ids: list[uuid.UUID]) -> Counter:
    with psycopg2.connect(db_url.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("SELECT schedule_id, scheduled_for FROM jobs WHERE schedule_id = ANY(%s::uuid[])",
                    ([str(i) for i in ids],))
        return Counter(cur.fetchall())


def fired_slots(db_url: str, ids: list[uuid.UUID]) -> int:
    return sum(slots_per_pair(db_url, ids).values())


def test_two_clock_processes_and_a_restart_fire_each_slot_once(db_url, other_app):
    env = {"DATABASE_URL": db_url}
    clocks = [ClockProcess("sched-a", env), ClockProcess("sched-b", env)]
    try:
        ids = seed(other_app, SCHEDULES, due_in=1)
        wait_for(lambda: fired_slots(db_url, ids) >= SCHEDULES, timeout=30, what="every schedule's first slot")
        clocks[0].stop()  # a restart while slots keep coming (the next ones are whole minutes)
        clocks[0] = ClockProcess("sched-a2", env)
        more = seed(other_app, SCHEDULES, due_in=1)
        wait_for(lambda: fired_slots(db_url, more) >= SCHEDULES, timeout=30, what="the second batch")
    finally:
        for clock in clocks:
            clock.stop()
    counts = slots_per_pair(db_url, ids + more)
    assert len(counts) >= 2 * SCHEDULES
    assert set(counts.values()) == {1}, [pair for pair, n in counts.items() if n > 1][:5]


def test_fire_passes_racing_without_the_clock_lock_create_one_job_per_slot(db_url, other_app):
    from app.extensions import db
    from app.schedules.firing import fire_due

    ids = seed(other_app, SCHEDULES, due_in=-0.5)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def race() -> None:
        with other_app.app_context():
            try:
                start.wait()
                for _ in range(3):
                    fire_due(batch=25)
            except BaseException as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    counts = slots_per_pair(db_url, ids)
    assert len(counts) == SCHEDULES and set(counts.values()) == {1}


def test_a_replayed_slot_creates_nothing_and_the_database_refuses_a_duplicate(db_url, other_app):
    from app.extensions import db
    from app.jobs.models import Job
    from app.schedules.firing import fire_due
    from app.schedules.models import Schedule

    [sid] = seed(other_app, 1, due_in=-0.5)
    with other_app.app_context():
        fire_due()
        job = db.session.execute(sa.select(Job).where(Job.schedule_id == sid)).scalar_one()
        # As if a clock restarted from an old snapshot: the same slot is due again.
        db.session.execute(sa.update(Schedule).where(Schedule.id == sid).values(next_fire_at=job.scheduled_for))
        db.session.commit()
        fire_due()
        assert db.session.execute(sa.select(sa.func.count()).where(Job.schedule_id == sid)).scalar_one() == 1
        with pytest.raises(IntegrityError):
            db.session.execute(sa.insert(Job).values(id=uuid.uuid4(), owner=job.owner, report="demo", params={},
                                                     state="Enqueued", schedule_id=sid, scheduled_for=job.scheduled_for,
                                                     created_at=job.created_at, updated_at=job.created_at))
        db.session.rollback()


def test_the_due_lookup_reads_the_partial_index_at_ten_thousand_schedules(db_url, other_app):
    from app.extensions import db
    from app.schedules.firing import due_schedules

    with other_app.app_context():
        # 10,000 schedules due next year, set-based (the API would take minutes).
        db.session.execute(sa.text(
            "INSERT INTO schedules (id, owner, report, params, cron, timezone, enabled, misfire, priority, next_fire_at,"
            " created_at, updated_at) SELECT gen_random_uuid(), 'user:bulk' || (n % 50), 'demo', '{}', '0 7 * * MON',"
            " 'UTC', true, 'skip', 3, now() + interval '300 days' + n * interval '1 minute', now(), now()"
            " FROM generate_series(1, 10000) AS n"))
        db.session.commit()
        db.session.execute(sa.text("ANALYZE schedules"))
        query = due_schedules(datetime.now(timezone.utc)).compile(db.engine, compile_kwargs={"literal_binds": True})
        plan = "\n".join(db.session.execute(sa.text(f"EXPLAIN {query}")).scalars())
    assert "ix_schedules_due" in plan and "Seq Scan" not in plan, plan
