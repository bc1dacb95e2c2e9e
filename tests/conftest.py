"""Fixtures: a dedicated PostgreSQL database and Redis DB, real Celery worker subprocesses."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_DB = os.environ.get("TEST_DB_NAME", "longrun_test")
TEST_DATABASE_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + TEST_DB
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _free_port_now() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The SMTP server tests/webhooks/test_email.py starts listens here (nothing does before); chosen once per session
# so every process started with TEST_ENV (the clock among them) knows it.
SMTP_PORT = int(os.environ.get("TEST_SMTP_PORT") or _free_port_now())

# Short timings so failure handling is observable in seconds, not minutes.
TEST_ENV = {
    "LONGRUN_ENV": "testing",
    "SECRET_KEY": "test-secret",
    "DATABASE_URL": TEST_DATABASE_URL,
    "REDIS_URL": TEST_REDIS_URL,
    "LONGRUN_PROGRESS_FLUSH_SECONDS": "0.05",
    "LONGRUN_HEARTBEAT_SECONDS": "0.5",
    "LONGRUN_STALE_AFTER_SECONDS": "3",
    "LONGRUN_CANCEL_POLL_SECONDS": "0.2",
    "LONGRUN_SWEEP_SECONDS": "1",
    "LONGRUN_RETRY_BACKOFF_SECONDS": "0.2",
    "LONGRUN_RETRY_BACKOFF_MAX_SECONDS": "1",
    "LONGRUN_V1_SECONDS": "1",
    "LONGRUN_SOFT_TIME_LIMIT": "60",
    "LONGRUN_HARD_TIME_LIMIT": "90",
    "LONGRUN_VISIBILITY_TIMEOUT": "600",
    "LONGRUN_FAULT_DRILLS": "1",
    "LONGRUN_JOB_MEMORY_MB": "256",
    # Webhook receivers in the tests listen on this machine; their retries come within a second.
    "LONGRUN_WEBHOOK_ALLOW_PRIVATE": "1",
    "LONGRUN_WEBHOOK_RETRY_SECONDS": "0.3",
    "LONGRUN_WEBHOOK_SECONDS": "0.2",
    "SMTP_URL": f"smtp://127.0.0.1:{SMTP_PORT}",
    "TEST_SMTP_PORT": str(SMTP_PORT),
    "SMTP_FROM": "longrun@tests.example",
}
os.environ.update(TEST_ENV)


# Every database this run created: dropped when the run ends (LONGRUN_KEEP_TEST_DBS=1 keeps them to look at).
_CREATED: set[str] = set()


def _recreate_database(name: str = TEST_DB) -> None:
    _CREATED.add(name)
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def isolated_database(suffix: str) -> str:
    """A separate migrated database, for tests whose sweep must not meet the shared worker's jobs."""
    name = f"{TEST_DB}_{suffix}"
    _recreate_database(name)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:app", "db", "upgrade"], cwd=ROOT,
                   env={**os.environ, "DATABASE_URL": url}, check=True, capture_output=True)
    return url


class RedisServer:
    """A Redis server of the test's own on a free port, which the test may restart."""

    def __init__(self) -> None:
        import shutil

        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        """Start (again) on the same port, empty: it keeps nothing on disk."""
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop(self) -> None:
        """Kill the server (SIGKILL: a crash, not a clean save)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Clean up after the run: drop the databases it created and flush its Redis DB (every process is stopped)."""
    if os.environ.get("LONGRUN_KEEP_TEST_DBS") == "1" or not _CREATED:
        return
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in sorted(_CREATED):
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()


# A test is slow when it needs real processes: the shared Celery worker (and every fixture built on it) here, or
# processes of its own (those modules say `pytestmark = pytest.mark.slow`). `pytest -m "not slow"` runs the rest:
# pure logic and tests against the real PostgreSQL and Redis, in seconds.
NEEDS_A_WORKER = {"worker", "web", "client", "other_client", "remote_web"}


def pytest_collection_modifyitems(config, items) -> None:
    """Mark every test whose fixtures start the shared worker as slow."""
    for item in items:
        if NEEDS_A_WORKER & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def app():
    """The Flask app on a freshly migrated test database and a flushed Redis DB."""
    _recreate_database()
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    from flask_migrate import upgrade

    from app import create_app

    flask_app = create_app()
    with flask_app.app_context():
        upgrade()
    yield flask_app


class ManagedProcess:
    """A subprocess in its own session, logging to test-artifacts, stopped gracefully then forced."""

    # Celery's main process must get SIGTERM alone (warm shutdown); gunicorn takes it as a group.
    term_whole_group = True
    grace_seconds = 15.0

    def __init__(self, name: str, log_name: str, cmd: list[str], env: dict[str, str]) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.name = name
        self.log_path = ARTIFACTS / log_name
        self._log = open(self.log_path, "w")
        # Own session: a SIGKILL of the group takes the main process and its children at once.
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until(self, ready, timeout: float = 90, interval: float = 0.2) -> None:
        """Poll ``ready()`` until true; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            if ready():
                return
            time.sleep(interval)
        raise RuntimeError(f"{self.name} not ready after {timeout}s")

    def kill_group(self) -> None:
        """SIGKILL the process and all its children."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Graceful stop, then force."""
        if self.proc.poll() is None:
            if self.term_whole_group:
                os.killpg(self.proc.pid, signal.SIGTERM)
            else:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.grace_seconds)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


class ClockProcess(ManagedProcess):
    """The Procfile's ``clock`` process (sweep, purge), as a real subprocess."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        super().__init__(f"clock {name}", f"clock-{name}.log", [sys.executable, "-m", "flask", "--app", "wsgi:app",
                                                                 "clock"], env)
        self.wait_until(lambda: "clock started" in self.log_path.read_text())


class WorkerProcess(ManagedProcess):
    """A real ``celery worker -P prefork`` subprocess, with a clock process beside it when ``clock``."""

    term_whole_group = False
    grace_seconds = 20.0

    def __init__(self, name: str, env: dict[str, str], concurrency: int = 2, clock: bool = True) -> None:
        cmd = [sys.executable, "-m", "celery", "-A", "celery_worker", "worker", "-P", "prefork",
               "-c", str(concurrency), "-n", f"{name}@%h", "-l", "INFO", "--without-mingle", "--without-gossip"]
        super().__init__(f"worker {name}", f"worker-{name}.log", cmd, env)
        self.clock = ClockProcess(name, env) if clock else None
        self.wait_until(lambda: " ready." in self.log_path.read_text())

    def stop(self) -> None:
        """Warm shutdown of the worker, then its clock."""
        super().stop()
        if self.clock is not None:
            self.clock.stop()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebServer(ManagedProcess):
    """The app served by a real gunicorn subprocess, as in production."""

    def __init__(self, name: str, env: dict[str, str] | None = None, workers: int = 1, threads: int = 50) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}",
               "--workers", str(workers), "--threads", str(threads), "wsgi:app"]
        super().__init__(f"web server {name}", f"web-{name}.log", cmd, env or {})
        self.wait_until(self._answers)

    def _answers(self) -> bool:
        import requests

        try:
            requests.get(self.url + "/reports", timeout=1)
            return True
        except requests.RequestException:
            return False


@pytest.fixture(scope="session")
def web(app, worker) -> Iterator[WebServer]:
    """One production-style web server shared by the tests that need a real socket."""
    server = WebServer("main")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def worker(app) -> Iterator[WorkerProcess]:
    """The shared worker (with a clock process that runs the sweep)."""
    proc = WorkerProcess("main", {})
    yield proc
    proc.stop()


@pytest.fixture
def client(app, worker):
    """A test client with its own cookie jar, i.e. its own anonymous owner."""
    return app.test_client()


@pytest.fixture
def other_client(app, worker):
    """A second, unrelated owner."""
    return app.test_client()
