"""Ctrl-C on ``./scripts/start``: the terminal sends SIGINT to the whole process group, and the stack stops
quickly, telling every open socket that the service restarts (1012)."""
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import ARTIFACTS, PG_ADMIN_URL, ROOT, TEST_DB, RedisServer, _recreate_database, free_port
from tests.helpers import wait_for
from tests.realtime.wsclient import Owner, close_code, is_final_event, read_until

pytestmark = pytest.mark.slow  # runs the Procfile processes

STOP_WITHIN_SECONDS = 5.0


def test_ctrl_c_closes_every_socket_with_1012_and_stops_within_5_seconds():
    name = f"{TEST_DB}_interrupt"
    _recreate_database(name)
    redis_server = RedisServer()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, "REDIS_URL": redis_server.url,
           "PORT": str(port), "BEAT_SCHEDULE": str(ARTIFACTS / f"beat-{name}"), "WEB_CONCURRENCY": "2"}
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"devstack-{name}.log"
    with open(log_path, "w") as log:
        # Its own process group, like a shell job: the whole group gets the terminal's SIGINT.
        stack = subprocess.Popen([sys.executable, "scripts/devstack.py"], cwd=ROOT, env=env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: "Longrun is running" in log_path.read_text() and _answers(base), timeout=60,
                 what="the Procfile processes to start")
        owner = Owner(base)
        job = owner.submit(version="v2", duration_seconds=0, steps=1)
        sockets = [owner.connect(f"job={job['id']}") for _ in range(4)]  # spread over both web workers
        for ws in sockets:
            read_until(ws, is_final_event(job["id"]))
        started = time.monotonic()
        os.killpg(stack.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        codes = [close_code(ws, timeout=STOP_WITHIN_SECONDS) for ws in sockets]
        stack.wait(STOP_WITHIN_SECONDS + 5)
        elapsed = time.monotonic() - started
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait(10)
        redis_server.stop()
    output = log_path.read_text()
    assert codes == [1012] * len(sockets), codes
    assert elapsed < STOP_WITHIN_SECONDS, (elapsed, output[-3000:])
    assert stack.returncode == 0, output[-3000:]  # stopped as asked, like SIGTERM (README: Deploy)
    assert "SIGKILL" not in output and "Traceback" not in output, output[-3000:]


def _answers(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
