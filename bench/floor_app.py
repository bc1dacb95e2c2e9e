"""The stack floor for ``bench_jobs.py``: the least a durable job system on Longrun's stack must do.

Not part of Longrun. One Flask app (served by gunicorn like Longrun) and one Celery app, with no ORM,
no history, no owners and no checks:

* ``POST /jobs`` inserts a row and commits (psycopg2), publishes the task, answers 202 with the id;
* the task marks the row ``Processing`` (commit), then ``Succeeded`` (commit), then publishes
  ``{"id": ...}`` on ``FLOOR_DONE_CHANNEL``.

One HTTP request, three durable commits, one queue hop and one pub/sub notice: what any design that keeps
every job in PostgreSQL pays on this stack (Flask + gunicorn, PostgreSQL, Celery on Redis) before it does
anything of its own. ``bench_jobs.py`` creates the table, then runs
``gunicorn ... floor_app:web`` and ``celery -A floor_app:celery_app worker`` with ``cwd=bench/``.
"""
from __future__ import annotations

import json
import os
import threading
import uuid

import psycopg2
import redis
from celery import Celery
from flask import Flask, jsonify
from raw_celery_app import DELIVERY_SETTINGS

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/longrun_bench")
FLOOR_DONE_CHANNEL = "bench:floor-done"
FLOOR_QUEUE = "bench-floor"
TASK_NAME = "bench.floor_run"
CREATE_TABLE = """CREATE TABLE IF NOT EXISTS floor_jobs (
    id uuid PRIMARY KEY, state varchar(16) NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz, finished_at timestamptz)"""

celery_app = Celery("bench_floor", broker=REDIS_URL)
celery_app.conf.update(DELIVERY_SETTINGS, task_default_queue=FLOOR_QUEUE)

_local = threading.local()


def _db() -> psycopg2.extensions.connection:
    """One connection per thread and process (gunicorn threads, forked pool processes)."""
    conn = getattr(_local, "conn", None)
    if conn is None or getattr(_local, "pid", None) != os.getpid() or conn.closed:
        _local.conn, _local.pid = psycopg2.connect(DATABASE_URL), os.getpid()
    return _local.conn


def _execute(sql: str, args: tuple) -> None:
    """Run one statement in its own committed transaction."""
    conn = _db()
    with conn.cursor() as cur:
        cur.execute(sql, args)
    conn.commit()


web = Flask(__name__)


@web.post("/jobs")
def create_job():
    """Insert the job row (committed), then publish it."""
    job_id = str(uuid.uuid4())
    _execute("INSERT INTO floor_jobs (id, state) VALUES (%s, 'Enqueued')", (job_id,))
    celery_app.send_task(TASK_NAME, args=[job_id])
    return jsonify(id=job_id), 202


_redis: tuple[int, redis.Redis] | None = None


@celery_app.task(name=TASK_NAME)
def run(job_id: str) -> None:
    """Processing (committed), Succeeded (committed), then the notice."""
    global _redis
    _execute("UPDATE floor_jobs SET state = 'Processing', started_at = now() WHERE id = %s", (job_id,))
    _execute("UPDATE floor_jobs SET state = 'Succeeded', finished_at = now() WHERE id = %s", (job_id,))
    if _redis is None or _redis[0] != os.getpid():
        _redis = (os.getpid(), redis.Redis.from_url(REDIS_URL))
    _redis[1].publish(FLOOR_DONE_CHANNEL, json.dumps({"id": job_id}))
