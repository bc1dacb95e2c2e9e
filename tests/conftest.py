"""Fixtures: a dedicated PostgreSQL database and Redis DB, real Celery worker subprocesses."""
from __future__ import annotations

import os
import signal
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
}
os.environ.update(TEST_ENV)


def _recreate_database() -> None:
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{TEST_DB}"')
    conn.close()


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


class WorkerProcess:
    """A real ``celery worker -P prefork`` subprocess."""

    def __init__(self, name: str, env: dict[str, str], concurrency: int = 2, beat: bool = True) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"worker-{name}.log"
        self.name = name
        cmd = [sys.executable, "-m", "celery", "-A", "celery_worker", "worker", "-P", "prefork",
               "-c", str(concurrency), "-n", f"{name}@%h", "-l", "INFO", "--without-mingle", "--without-gossip"]
        if beat:
            cmd += ["-B", "-s", str(ARTIFACTS / f"beat-{name}-schedule")]
        self._log = open(self.log_path, "w")
        # Own session: a SIGKILL of the group takes the main process and its children at once.
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited: {self.log_path.read_text()[-3000:]}")
            if " ready." in self.log_path.read_text():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} not ready after {timeout}s")

    def kill_group(self) -> None:
        """SIGKILL the worker and all its pool processes."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Warm shutdown, then force."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="session")
def worker(app) -> Iterator[WorkerProcess]:
    """The shared worker (with the embedded beat that runs the sweep)."""
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
