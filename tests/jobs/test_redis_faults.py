"""Redis faults: restarts never stop the queue, deployments sharing a Redis stay apart, lost messages come back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
import redis
import requests
import websocket

from app.channels import Namespace
from app.config import default_instance
from tests.conftest import ROOT, ClockProcess, ManagedProcess, RedisServer, WebServer, WorkerProcess, isolated_database
from tests.helpers import wait_for
from tests.realtime.wsclient import Owner

FINAL = {"Succeeded", "Failed", "Cancelled"}


class ProcfileWorker(ManagedProcess):
    """The Procfile's ``worker`` line, run the way a Procfile runner does (through the shell, no supervisor)."""

    term_whole_group = False
    grace_seconds = 20.0

    def __init__(self, name: str, env: dict[str, str]) -> None:
        line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("worker:"))
        command = line.partition(":")[2].strip()
        path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
        super().__init__(f"procfile worker {name}", f"worker-{name}.log", ["/bin/sh", "-c", f"exec {command}"],
                         {**env, "PATH": path})
        self.wait_until(lambda: " ready." in self.log_path.read_text())


@pytest.mark.slow
def test_procfile_worker_keeps_consuming_across_five_redis_restarts_with_a_job_in_flight(app):
    redis_server = RedisServer()
    env = {"REDIS_URL": redis_server.url, "DATABASE_URL": isolated_database("redis_restarts")}
    web = WebServer("redis-restarts", env)
    worker = ProcfileWorker("procfile-restarts", env)
    clock = ClockProcess("redis-restarts", env)
    pid = worker.proc.pid
    try:
        owner = Owner(web.url)
        jobs = []
        for restart in range(1, 6):
            in_flight = owner.submit(version="v2", duration_seconds=3, steps=6)["id"]
            wait_for(lambda j=in_flight: owner.job(j)["state"] == "Processing", timeout=60,
                     what=f"a job in flight before restart {restart}")
            redis_server.stop()
            time.sleep(0.5)
            redis_server.start()
            after = owner.submit(version="v2", duration_seconds=0, steps=1)["id"]
            wait_for(lambda j=after: owner.job(j)["state"] == "Succeeded", timeout=60, interval=0.3,
                     what=f"a job submitted after restart {restart} to succeed")
            assert worker.proc.poll() is None, worker.log_path.read_text()[-3000:]
            jobs += [in_flight, after]
        states = {j: wait_for(lambda j=j: owner.job(j)["state"] in FINAL and owner.job(j), timeout=60)["state"]
                  for j in jobs}
        assert set(states.values()) == {"Succeeded"}, states
        # The process the Procfile line started is still the one serving: nothing restarted it.
        assert worker.proc.pid == pid and worker.proc.poll() is None
        assert "Unrecoverable error" not in worker.log_path.read_text()
    finally:
        worker.stop()
        clock.stop()
        web.stop()
        redis_server.stop()


class Instance:
    """One deployment (database, web, worker + clock) on a shared Redis, with an API token for ``alice``."""

    def __init__(self, name: str, redis_url: str) -> None:
        # 50 jobs at once from one owner: the per-owner limits are not what this test is about.
        self.env = {"REDIS_URL": redis_url, "DATABASE_URL": isolated_database(name),
                    "LONGRUN_MAX_WAITING_PER_OWNER": "0", "LONGRUN_MAX_JOBS_PER_MINUTE": "0"}
        self.web = WebServer(name, self.env)
        self.worker = WorkerProcess(name, self.env, concurrency=2)
        created = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:app", "tokens", "create", "alice"],
                                 cwd=ROOT, env={**os.environ, **self.env}, capture_output=True, text=True, check=True)
        self.headers = {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}

    def submit(self) -> str:
        response = requests.post(self.web.url + "/reports/v3", json={"params": {"duration_seconds": 0, "steps": 1}},
                                 headers=self.headers, timeout=10)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def state(self, job_id: str) -> str:
        return requests.get(f"{self.web.url}/jobs/{job_id}", headers=self.headers, timeout=10).json()["state"]

    def stop(self) -> None:
        self.worker.stop()
        self.web.stop()


class SocketLog(threading.Thread):
    """Every job id seen on one of alice's ``all=1`` sockets."""

    def __init__(self, instance: Instance) -> None:
        super().__init__(daemon=True)
        url = instance.web.url.replace("http://", "ws://") + "/notifications?all=1"
        self.ws = websocket.create_connection(url, header=[f"{k}: {v}" for k, v in instance.headers.items()],
                                              timeout=10)
        self.job_ids: set[str] = set()
        self.done = threading.Event()

    def run(self) -> None:
        self.ws.settimeout(0.5)
        while not self.done.is_set():
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError, ValueError):
                return  # closed (a close frame is not JSON)
            self.job_ids.add(message.get("job_id") or message.get("job", {}).get("id"))


@pytest.mark.slow
@pytest.mark.parametrize("db_numbers", [(0, 0), (0, 1)], ids=["same-db-number", "different-db-numbers"])
def test_two_instances_on_one_redis_never_touch_each_other(app, db_numbers):
    redis_server = RedisServer()
    base = redis_server.url.rsplit("/", 1)[0]
    first = Instance(f"twin_a{db_numbers[1]}", f"{base}/{db_numbers[0]}")
    second = Instance(f"twin_b{db_numbers[1]}", f"{base}/{db_numbers[1]}")
    logs = [SocketLog(first), SocketLog(second)]
    for log in logs:
        log.start()
    try:
        ids = {0: [], 1: []}
        for _ in range(50):
            ids[0].append(first.submit())
            ids[1].append(second.submit())
        for index, instance in enumerate((first, second)):
            for job_id in ids[index]:
                wait_for(lambda i=instance, j=job_id: i.state(j) == "Succeeded", timeout=60, interval=0.2,
                         what=f"job {job_id} to succeed in its own instance")
        time.sleep(1)  # let the last events arrive
        for log in logs:
            log.done.set()
            log.join(5)
        assert set(ids[0]) <= logs[0].job_ids and set(ids[1]) <= logs[1].job_ids
        assert not logs[0].job_ids & set(ids[1]) and not logs[1].job_ids & set(ids[0])
        for instance in (first, second):
            log_text = instance.worker.log_path.read_text()
            assert "dropping stale message" not in log_text, "a worker saw the other instance's messages"
    finally:
        for log in logs:
            log.ws.close()
        first.stop()
        second.stop()
        redis_server.stop()


@pytest.mark.slow
def test_a_fresh_job_whose_message_is_lost_is_published_again_within_a_minute(app):
    redis_server = RedisServer()
    database_url = isolated_database("lost_message")
    env = {"REDIS_URL": redis_server.url, "DATABASE_URL": database_url}
    web = WebServer("lost-message", env)
    gone = WorkerProcess("lost-message", env, concurrency=1)
    workers = [gone]
    try:
        # A worker dies: its slot still counts for a few seconds, so the next job is handed to nobody.
        wait_for(lambda: _rows(database_url, "SELECT 1 FROM worker_slots"), timeout=10, what="the worker's slots")
        gone.kill_group()
        owner = Owner(web.url)
        waiting = owner.submit(version="v2", duration_seconds=0, steps=1)["id"]
        queue_key = Namespace(default_instance(database_url)).queue_key("longrun")
        client = redis.Redis.from_url(redis_server.url)
        wait_for(lambda: client.llen(queue_key) == 1, timeout=10, what="the message to wait in the queue")
        original = _task_id(database_url, waiting)
        client.delete(queue_key)  # the message is gone: not in the queue, with no worker
        lost_at = time.monotonic()
        workers.append(WorkerProcess("lost-message-2", env, concurrency=1, clock=False))
        done = wait_for(lambda: owner.job(waiting)["state"] in FINAL and owner.job(waiting), timeout=60,
                        interval=0.5, what="the job whose message was lost to run")
        assert time.monotonic() - lost_at < 60
        assert done["state"] == "Succeeded" and done["attempts"] == 1
        assert _task_id(database_url, waiting) != original  # handed out again, under a new task id
    finally:
        for worker in workers:
            worker.stop()
        web.stop()
        redis_server.stop()


def _task_id(database_url: str, job_id: str) -> str:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT celery_task_id FROM jobs WHERE id = %s", (job_id,))
        return cur.fetchone()[0]


def _rows(database_url: str, sql: str) -> list[tuple]:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()
