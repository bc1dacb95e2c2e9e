"""Faults caused on purpose: every job ends final with a readable reason, the workers keep serving."""
import os
import signal
import uuid

import psycopg2
import pytest
import requests

from app.extensions import db
from app.jobs.models import Job
from tests.conftest import PG_ADMIN_URL, WebServer, isolated_database
from tests.helpers import submit, wait_for, wait_for_state

pytestmark = pytest.mark.slow  # starts its own processes


def _still_serving(client):
    follow_up = submit(client, duration_seconds=0, steps=1)
    assert wait_for_state(client, follow_up["id"], "Succeeded")["attempts"] == 1


@pytest.mark.parametrize("mode, kind, reason", [
    ("raise", "DrillFailure", "the drill raised on purpose"),
    ("hang", "TimeLimitExceeded", "ran past its time limit (3 s)"),
    ("memory", "MemoryError", "exceeded its memory budget of 256 MB"),
])
def test_misbehaving_report_fails_readably_and_worker_keeps_serving(client, mode, kind, reason):
    job = submit(client, report="fault_drill", mode=mode, seconds=60, megabytes=2048)
    done = wait_for_state(client, job["id"], {"Succeeded", "Failed"}, timeout=30)
    assert done["state"] == "Failed" and done["attempts"] == 1
    assert done["error"]["type"] == kind and reason in done["error"]["message"]
    _still_serving(client)


def _pool_pid(app, job_id: str, attempt: int) -> int:
    def running_attempt():
        with app.app_context():
            job = db.session.get(Job, uuid.UUID(job_id))
            db.session.remove()
            return job.worker if job.state == "Processing" and job.attempts == attempt and job.progress_done else None

    return int(wait_for(running_attempt, timeout=30, what=f"attempt {attempt} to run").rsplit(":", 1)[1])


def _attempts_never_overlap(client, job_id: str) -> None:
    """Each attempt's recorded side effects (its progress) end before the next attempt starts."""
    events = client.get(f"/jobs/{job_id}/events").get_json()["items"]
    attempts_seen = [e["attempt"] for e in events if e["kind"] == "progress"]
    assert attempts_seen == sorted(attempts_seen), attempts_seen
    starts = [e for e in events if e["kind"] == "state" and e["state"] == "Processing"]
    assert [e["attempt"] for e in starts] == list(range(1, len(starts) + 1))


def test_repeated_sigkill_retries_then_caps_redeliveries(app, client):
    survivor = submit(client, duration_seconds=2, steps=8)
    os.kill(_pool_pid(app, survivor["id"], 1), signal.SIGKILL)
    assert wait_for_state(client, survivor["id"], {"Succeeded", "Failed"}, timeout=30)["attempts"] == 2
    _attempts_never_overlap(client, survivor["id"])

    doomed = submit(client, duration_seconds=30, steps=60)
    for attempt in (1, 2, 3):
        os.kill(_pool_pid(app, doomed["id"], attempt), signal.SIGKILL)
    done = wait_for_state(client, doomed["id"], {"Succeeded", "Failed"}, timeout=30)
    assert done["state"] == "Failed" and done["attempts"] == 3
    # Rescued by the redelivered message ("died") or by the sweep ("stopped responding"), whichever came first.
    assert done["error"]["type"] == "WorkerLost" and "worker running attempt 3" in done["error"]["message"]
    _attempts_never_overlap(client, doomed["id"])
    _still_serving(client)


def _admin(sql: str) -> None:
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def test_database_outage_answers_503_then_recovers_without_restart(app):
    url = isolated_database("pg_outage")
    name = url.rsplit("/", 1)[1]
    web = WebServer("pg-outage", {"DATABASE_URL": url})
    try:
        http = requests.Session()
        assert http.get(web.url + "/jobs", timeout=5).status_code == 200
        _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        down = http.get(web.url + "/jobs", timeout=10)
        assert down.status_code == 503 and down.headers["Content-Type"] == "application/problem+json"
        assert "database" in down.json()["detail"] and "Traceback" not in down.text
        post = http.post(web.url + "/reports/v2", json={}, timeout=10)
        assert post.status_code == 503
        ready = http.get(web.url + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("unreachable")
    finally:
        _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    try:
        wait_for(lambda: http.get(web.url + "/jobs", timeout=5).status_code == 200, timeout=15,
                 what="requests to succeed again")
        assert http.get(web.url + "/readyz", timeout=5).status_code == 200
    finally:
        web.stop()
