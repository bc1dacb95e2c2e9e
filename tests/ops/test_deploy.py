"""The Procfile run like a platform: release migrates, web + worker + beat serve; SIGTERM loses nothing."""
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import psycopg2
import pytest
import requests

from tests.conftest import ARTIFACTS, PG_ADMIN_URL, ROOT, TEST_DB, RedisServer, _recreate_database, free_port
from tests.helpers import wait_for
from tests.realtime.wsclient import Owner

pytestmark = pytest.mark.slow  # runs the Procfile processes


def test_procfile_runs_and_sigterm_lets_running_jobs_finish(app):
    name = f"{TEST_DB}_deploy"  # under the run's prefix: two suites on one server never share it
    _recreate_database(name)  # empty: the release phase must migrate it
    database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    redis_server = RedisServer()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_server.url, "PORT": str(port),
           "WEB_CONCURRENCY": "1"}
    log_path = ARTIFACTS / "devstack.log"
    with open(log_path, "w") as log:
        stack = subprocess.Popen([sys.executable, "scripts/devstack.py"], cwd=ROOT, env=env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: "Longrun is running" in log_path.read_text() and _answers(base), timeout=60,
                 what="the Procfile processes to start")
        owner = Owner(base)
        job = owner.submit(version="v2", duration_seconds=4, steps=8)
        wait_for(lambda: owner.job(job["id"])["state"] == "Processing", timeout=30, what="job to start")
        ws = owner.connect(f"job={job['id']}")
        stack.send_signal(signal.SIGTERM)
        code = _close_code(ws)
        assert code == 1012, code  # sockets are told the service restarts
        stack.wait(60)
        assert stack.returncode == 0, log_path.read_text()[-3000:]
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
        redis_server.stop()
    conn = psycopg2.connect(database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT state, attempts FROM jobs WHERE id = %s", (job["id"],))
        state, attempts = cur.fetchone()
        cur.execute("SELECT version_num FROM alembic_version")
        version = cur.fetchone()[0]
    conn.close()
    assert (state, attempts) == ("Succeeded", 1)  # warm shutdown finished the running job
    assert version == sorted(p.name for p in (ROOT / "migrations" / "versions").glob("0*.py"))[-1][:4]


def test_a_second_copy_on_a_taken_port_says_so_and_stops():
    """No restart loop that prints the other instance's URL: one clear message, a failing exit, nothing started."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        run = subprocess.run([sys.executable, "scripts/devstack.py"], cwd=ROOT, env={**os.environ, "PORT": str(port)},
                             capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert f"Port {port} is already in use" in run.stderr and "PORT=5001 ./scripts/start" in run.stderr, run.stderr
    assert "Longrun is running" not in run.stdout and "database:" not in run.stdout, run.stdout


def _answers(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _close_code(ws) -> int | None:
    ws.settimeout(20)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == 8:  # close frame
            return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
    return None


def test_start_says_which_redis_it_uses():
    import importlib.util

    spec = importlib.util.spec_from_file_location("devstack", ROOT / "scripts" / "devstack.py")
    devstack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(devstack)
    given = {"REDIS_URL": "redis://elsewhere:6379/3"}
    assert devstack.choose_redis(given, []) == "REDIS_URL from the environment"
    env: dict[str, str] = {}  # this machine runs a Redis on 6379 (the suite's own services)
    assert devstack.choose_redis(env, []) == "the Redis server already running on localhost:6379 (database 0)"
    assert env["REDIS_URL"] == "redis://localhost:6379/0"
