"""SQLite, the embedded default, runs schedules too: two real clock processes on one SQLite file fire each slot
once, and a job asked for later is enqueued when due."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, ClockProcess
from tests.helpers import wait_for

pytestmark = pytest.mark.slow  # starts clock processes

COUNT = 20


def test_two_clocks_on_sqlite_fire_each_slot_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:app", "db", "upgrade"], cwd=ROOT,
                   env={**os.environ, "DATABASE_URL": url}, check=True, capture_output=True, timeout=120)
    from app import create_app
    from app.extensions import db
    from app.jobs.models import Job
    from app.jobs.service import submit_job
    from app.schedules.models import Schedule
    from app.schedules.service import create_schedule

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        ids = [create_schedule("user:embedded", {"report": "demo", "cron": "* * * * *", "timezone": "Europe/Berlin"}).id
               for _ in range(COUNT)]
        due = datetime.now(timezone.utc) + timedelta(seconds=2)
        db.session.execute(sa.update(Schedule).values(next_fire_at=due))
        db.session.commit()
        later = submit_job("user:embedded", "demo", {}, run_at=due).job
        assert later.state == "Scheduled"
        db.session.remove()

    clocks = [ClockProcess("sqlite-a", {"DATABASE_URL": url}), ClockProcess("sqlite-b", {"DATABASE_URL": url})]
    try:
        def fired() -> int:
            with app.app_context():
                try:
                    return db.session.execute(sa.select(sa.func.count()).where(Job.schedule_id.is_not(None))).scalar_one()
                finally:
                    db.session.remove()

        wait_for(lambda: fired() >= COUNT, timeout=30, what="every schedule's slot on SQLite")
    finally:
        for clock in clocks:
            clock.stop()
    with app.app_context():
        rows = db.session.execute(sa.select(Job.schedule_id, Job.scheduled_for, Job.priority)
                                  .where(Job.schedule_id.is_not(None))).all()
        assert sorted(str(r[0]) for r in rows if r[1] == due) == sorted(str(i) for i in ids)
        assert len({(r[0], r[1]) for r in rows}) == len(rows)  # no slot twice
        assert {r[2] for r in rows} == {3}
        assert db.session.get(Job, later.id).state == "Enqueued"
        db.session.remove()
