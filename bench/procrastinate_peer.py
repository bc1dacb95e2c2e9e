"""The Procrastinate peer for ``bench_jobs.py``: a PostgreSQL-backed Python job queue doing the bench's zero-work job.

Not part of Longrun; a bench-only dependency (``bench/requirements.txt``). Two entry points, both with ``cwd=bench/``:

* ``procrastinate --app=procrastinate_peer.app worker --concurrency 2 --queues <queue>`` runs the jobs: the
  task ``noop(token)`` publishes ``{"token": ...}`` on ``DONE_CHANNEL`` (as the raw Celery baseline does);
* ``gunicorn ... procrastinate_peer:web`` serves ``POST /jobs``: defer the task, answer 202 with the token, so the
  peer pays an HTTP request on the same gunicorn shape as Longrun and the stack floor.

``bench_jobs.py`` also defers from its own process (``app.open()`` then ``noop.defer``) for the raw figures.
The task is a plain sync function, as a Flask team writes one (Procrastinate runs it in a thread).
"""
from __future__ import annotations

import json
import os
import threading
import uuid

import redis
from flask import Flask, jsonify
from procrastinate import App, PsycopgConnector

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
DSN = os.environ.get("BENCH_PROCRASTINATE_DSN", "postgresql://postgres@127.0.0.1:5432/longrun_bench_peer_procrastinate")
QUEUE = os.environ.get("BENCH_PROCRASTINATE_QUEUE", "bench-peer")
DONE_CHANNEL = os.environ.get("BENCH_PROCRASTINATE_CHANNEL", "bench:procrastinate-done")
# psycopg_pool's default size (4 connections), allowed to grow for the bench's 8 client threads: the pool is not
# the limit.
POOL_MAX = int(os.environ.get("BENCH_PROCRASTINATE_POOL_MAX", "16"))

app = App(connector=PsycopgConnector(conninfo=DSN, min_size=4, max_size=POOL_MAX))

_client: tuple[int, redis.Redis] | None = None


def _redis() -> redis.Redis:
    """One Redis client per process."""
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(REDIS_URL))
    return _client[1]


@app.task(name="bench.procrastinate_noop", queue=QUEUE)
def noop(token: str) -> None:
    """Do nothing, then say so on the pub/sub channel."""
    _redis().publish(DONE_CHANNEL, json.dumps({"token": token}))


web = Flask(__name__)
_opened: set[int] = set()
_open_lock = threading.Lock()


def _ensure_open() -> None:
    """Open the app's (sync) connection pool once per gunicorn worker process, after the fork."""
    if os.getpid() in _opened:
        return
    with _open_lock:
        if os.getpid() not in _opened:
            app.open()
            _opened.add(os.getpid())


@web.post("/jobs")
def create_job():
    """Defer the job (committed by Procrastinate's INSERT), answer 202 with its token."""
    _ensure_open()
    token = uuid.uuid4().hex
    noop.defer(token=token)
    return jsonify(id=token), 202


@web.get("/healthz")
def healthz():
    """Alive (for the bench's start-up wait)."""
    return "ok"
