"""A minimal standalone Celery app: the raw baseline for ``bench_jobs.py`` (not part of Longrun).

Run by the benchmark as ``celery -A raw_celery_app worker -P prefork -c 2`` with ``cwd=bench/``.
The one task does nothing but publish ``{"token": ...}`` to ``RAW_DONE_CHANNEL`` when it runs, so the
client can time apply_async() -> completion notice over the same kind of path Longrun uses
(Redis broker in, Redis pub/sub out).

The Celery settings that shape delivery (acks_late, prefetch 1, no result backend, JSON) are the ones
Longrun uses (``app/jobs/celery_app.py``), so the comparison isolates Longrun's own work.
"""
from __future__ import annotations

import json
import os

import redis
from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
RAW_DONE_CHANNEL = "bench:raw-done"
RAW_QUEUE = "bench-raw"

# Shared with floor_app.py: every baseline delivers tasks the way Longrun does.
DELIVERY_SETTINGS = {
    "task_ignore_result": True,
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "task_serializer": "json",
    "accept_content": ["json"],
    "broker_connection_retry_on_startup": True,
    "worker_hijack_root_logger": False,
}

app = Celery("bench_raw", broker=REDIS_URL)
app.conf.update(DELIVERY_SETTINGS, task_default_queue=RAW_QUEUE)

_client: tuple[int, redis.Redis] | None = None


def _redis() -> redis.Redis:
    """One client per (forked) pool process."""
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(REDIS_URL))
    return _client[1]


@app.task(name="bench.noop")
def noop(token: str) -> None:
    """Do nothing, then say so on the pub/sub channel."""
    _redis().publish(RAW_DONE_CHANNEL, json.dumps({"token": token}))
