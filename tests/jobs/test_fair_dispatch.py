"""Fair dispatch on real workers: owners take turns, priorities, pause/resume, queue position, a dying dispatcher."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

import psycopg2
import pytest
import requests

from tests.conftest import ROOT, ClockProcess, WebServer, WorkerProcess, isolated_database
from tests.helpers import wait_for

FINAL = {"Succeeded", "Failed", "Cancelled"}
pytestmark = pytest.mark.slow


class Deployment:
    """One deployment of its own (database, web, one worker with 2 slots, clock): nothing else competes."""

    def __init__(self, name: str) -> None:
        self.database_url = isolated_database(name)
        self.env = {"DATABASE_URL": self.database_url, "LONGRUN_MAX_JOBS_PER_MINUTE": "0"}
        self.web = WebServer(name, self.env)
        self.worker = WorkerProcess(name, self.env, concurrency=2)

    def owner(self, name: str) -> "ApiOwner":
        created = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:app", "tokens", "create", name],
                                 cwd=ROOT, env={**os.environ, **self.env}, capture_output=True, text=True)
        assert created.returncode == 0, created.stderr[-2000:]
        return ApiOwner(self.web.url, created.stdout.strip().splitlines()[-1])

    def rows(self, sql: str, *args: object) -> list[tuple]:
        with psycopg2.connect(self.database_url) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def stop(self) -> None:
        self.worker.stop()
        self.web.stop()


class ApiOwner:
    """An API client with its own bearer token."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def submit(self, seconds: float, **body: object) -> str:
        response = self.http.post(f"{self.base}/reports/v2",
                                  json={"params": {"duration_seconds": seconds, "steps": 1}, **body}, timeout=10)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id: str) -> dict:
        return self.http.get(f"{self.base}/jobs/{job_id}", timeout=10).json()


@pytest.fixture(scope="module")
def deployment(app):
    deployment = Deployment("fair")
    yield deployment
    deployment.stop()


def _at(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _drain(deployment: Deployment) -> None:
    """Cancel every unfinished job (so the next test starts with idle workers)."""
    with psycopg2.connect(deployment.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM jobs WHERE state IN ('Enqueued', 'Retrying', 'Processing')")
        unfinished = cur.fetchall()
    operator = requests.Session()
    for (job_id,) in unfinished:
        operator.post(f"{deployment.web.url}/dashboard/jobs/{job_id}/cancel", json={}, timeout=10)
    wait_for(lambda: not deployment.rows("SELECT 1 FROM jobs WHERE state IN ('Enqueued', 'Retrying', 'Processing')"),
             timeout=60, what="every job to end")


def test_predicted_start_of_uniform_jobs_is_within_30_percent(deployment):
    owner = deployment.owner("predictor")
    for job_id in [owner.submit(1.0) for _ in range(2)]:  # measured durations to predict from
        wait_for(lambda j=job_id: owner.job(j)["state"] == "Succeeded", timeout=30)
    ids = [owner.submit(1.0) for _ in range(8)]
    places = {}
    for job_id in ids:  # each place as of the moment it was asked (the line may move in between)
        places[job_id] = (time.time(), owner.job(job_id).get("queue"))
    waiting = {j: (asked, p) for j, (asked, p) in places.items() if p is not None}
    assert len(waiting) >= 4, places  # two start at once, the rest wait in line
    positions = [p["position"] for _, p in waiting.values()]
    assert positions == sorted(positions) and positions[0] >= 1, positions  # later jobs, later places
    for job_id in ids:
        wait_for(lambda j=job_id: owner.job(j)["state"] == "Succeeded", timeout=60)
    for job_id, (asked, place) in waiting.items():
        actual = _at(owner.job(job_id)["started_at"]) - asked
        predicted = _at(place["predicted_start"]) - asked
        assert abs(predicted - actual) <= 0.3 * actual, (place["position"], predicted, actual)


def test_one_owners_batch_does_not_hold_up_another_owner(deployment):
    batch, lone = deployment.owner("batch"), deployment.owner("lone")
    for _ in range(300):
        batch.submit(1.0)
    job_id = lone.submit(1.0)
    done = wait_for(lambda: lone.job(job_id)["state"] in FINAL and lone.job(job_id), timeout=30)
    assert done["state"] == "Succeeded"
    assert _at(done["started_at"]) - _at(done["created_at"]) < 2.0, done
    running = deployment.rows("SELECT count(*) FROM jobs WHERE owner = 'user:batch' AND state = 'Processing'")
    assert running[0][0] <= 2  # the owner's cap holds
    _drain(deployment)


def test_three_owners_finish_interleaved_at_the_same_rate(deployment):
    owners = [deployment.owner(f"share{i}") for i in range(3)]
    ids: dict[int, list[str]] = {i: [] for i in range(3)}

    def submit_all(i: int) -> None:
        ids[i] = [owners[i].submit(0.1) for _ in range(100)]

    threads = [threading.Thread(target=submit_all, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: not deployment.rows(
        "SELECT 1 FROM jobs WHERE owner LIKE 'user:share%%' AND state NOT IN ('Succeeded', 'Failed', 'Cancelled')"),
        timeout=120, interval=0.5, what="all 300 jobs to finish")
    rows = deployment.rows("SELECT owner, finished_at FROM jobs WHERE owner LIKE 'user:share%%' ORDER BY finished_at")
    first_done = min(max(t for o, t in rows if o == name) for name in {o for o, _ in rows})
    counts = {name: sum(1 for o, t in rows if o == name and t <= first_done) for name in {o for o, _ in rows}}
    # Until the first owner is through, every owner got the same share of the finished jobs (±20 %).
    mean = sum(counts.values()) / 3
    assert all(abs(n - mean) <= 0.2 * mean for n in counts.values()), counts


def test_higher_priority_starts_first_within_an_owners_turn(deployment):
    owner = deployment.owner("ranked")
    blockers = [owner.submit(2.0) for _ in range(2)]
    wait_for(lambda: all(owner.job(j)["state"] == "Processing" for j in blockers), timeout=30)
    low = [owner.submit(0.2, priority=1) for _ in range(3)]
    high = owner.submit(0.2)  # the interactive default, higher than 1
    assert owner.job(high)["priority"] > owner.job(low[0])["priority"]
    for job_id in [*low, high]:
        wait_for(lambda j=job_id: owner.job(j)["state"] == "Succeeded", timeout=30)
    started = {j: _at(owner.job(j)["started_at"]) for j in [*low, high]}
    assert started[high] <= min(started[j] for j in low), started
    too_high = owner.http.post(f"{owner.base}/reports/v2", json={"priority": 9}, timeout=10)
    assert too_high.status_code == 422 and too_high.json()["errors"][0]["field"] == "priority"


def test_pause_keeps_jobs_waiting_and_resume_continues_in_order(deployment):
    owner, operator = deployment.owner("paused"), requests.Session()
    url = deployment.web.url
    assert operator.post(f"{url}/dispatch/pause", json={}, timeout=10).status_code == 200
    ids = [owner.submit(0.1) for _ in range(3)]
    time.sleep(2)
    assert {owner.job(j)["state"] for j in ids} == {"Enqueued"}
    assert owner.job(ids[0])["queue"]["paused"] is True
    status = operator.get(f"{url}/dispatch", timeout=10).json()
    assert [p["scope"] for p in status["paused"]] == ["*"] and status["paused"][0]["paused_at"]
    assert operator.post(f"{url}/dispatch/resume", json={}, timeout=10).status_code == 200
    for job_id in ids:
        wait_for(lambda j=job_id: owner.job(j)["state"] == "Succeeded", timeout=30)
    starts = [_at(owner.job(j)["started_at"]) for j in ids]
    # Resumed in the order they were waiting: the first two go out together (two slots), the third after them.
    assert starts[2] >= max(starts[:2]), starts

    # One report only: the others keep flowing.
    assert operator.post(f"{url}/dispatch/pause", json={"report": "demo"}, timeout=10).status_code == 200
    held = owner.submit(0.1)
    other = owner.http.post(f"{url}/reports/v2", json={"report": "fault_drill", "params": {"mode": "raise"}},
                            timeout=10).json()["id"]
    wait_for(lambda: owner.job(other)["state"] in FINAL, timeout=30, what="the other report to run")
    assert owner.job(held)["state"] == "Enqueued"
    bad = operator.post(f"{url}/dispatch/pause", json={"report": "nope"}, timeout=10)
    assert bad.status_code == 422 and bad.headers["Content-Type"] == "application/problem+json"
    assert operator.post(f"{url}/dispatch/resume", json={"report": "demo"}, timeout=10).status_code == 200
    wait_for(lambda: owner.job(held)["state"] == "Succeeded", timeout=30)


def test_a_killed_dispatcher_loses_and_duplicates_nothing(deployment):
    second = ClockProcess("fair-second", deployment.env)
    owners = [deployment.owner(f"backlog{i}") for i in range(2)]
    ids = [o.submit(0.2) for _ in range(15) for o in owners]
    time.sleep(1.5)
    os.killpg(deployment.worker.clock.proc.pid, signal.SIGKILL)  # mid-backlog
    try:
        wait_for(lambda: not deployment.rows(
            "SELECT 1 FROM jobs WHERE owner LIKE 'user:backlog%%' AND state NOT IN ('Succeeded', 'Failed', 'Cancelled')"),
            timeout=90, interval=0.5, what="the backlog to drain")
        rows = deployment.rows("SELECT state, attempts FROM jobs WHERE id = ANY(%s::uuid[])", ids)
        assert len(rows) == 30 and set(rows) == {("Succeeded", 1)}, rows
        starts = deployment.rows("SELECT count(*) FROM job_events WHERE job_id = ANY(%s::uuid[]) "
                                 "AND kind = 'state' AND state = 'Processing'", ids)
        assert starts[0][0] == 30  # each job started exactly once
    finally:
        deployment.worker.clock = second  # stopped with the worker at the end of the module


def test_a_waiting_jobs_place_is_pushed_over_its_socket_as_the_line_moves(deployment):
    import json

    import websocket

    from app.channels import SOCKET_FRAME_KEYS

    owner, operator = deployment.owner("watcher"), requests.Session()
    url = deployment.web.url
    assert operator.post(f"{url}/dispatch/pause", json={}, timeout=10).status_code == 200
    ids = [owner.submit(0.5) for _ in range(5)]
    ws = websocket.create_connection(url.replace("http://", "ws://") + f"/notifications?job={ids[-1]}",
                                     header=[f"Authorization: {owner.http.headers['Authorization']}"], timeout=10)
    try:
        snapshot = json.loads(ws.recv())
        assert snapshot["job"]["queue"] == {"position": 5, "predicted_start": None, "paused": True}
        assert operator.post(f"{url}/dispatch/resume", json={}, timeout=10).status_code == 200
        places = []
        while True:
            frame = json.loads(ws.recv())
            if frame["type"] == "queue":
                assert set(frame) == SOCKET_FRAME_KEYS["queue"]
                places.append(frame["position"])
            elif frame["type"] == "event" and frame["state"] == "Processing":
                break
        assert places and places == sorted(places, reverse=True) and places[-1] < 5, places
    finally:
        ws.close()
    page = owner.http.get(f"{url}/jobs/{ids[-1]}", headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200
