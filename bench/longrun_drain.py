"""``bench_jobs.py``'s Longrun drain: jobs POSTed while no worker runs wait in PostgreSQL; then a worker starts.

With no live worker the dispatcher sees no capacity and hands nothing to Celery, so the whole backlog is in the
``jobs`` table when the worker starts; the figure is the time from starting it to the last Succeeded event.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import psycopg2
import redis
from benchlib import Proc, ProcSet
from jobs_common import Listener, celery_worker_cmd, post_many
from peer_phases import drain_timed

ROOT = Path(__file__).resolve().parent.parent
# worker_slots rows fresher than this count as capacity (app/jobs/capacity.py WORKER_FRESH_SECONDS).
FRESH_SECONDS = 20


def live_slots(db_url: str) -> int:
    """Worker slots the dispatcher would count now."""
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(sum(concurrency), 0) FROM worker_slots "
                        "WHERE seen_at > now() - make_interval(secs => %s)", (FRESH_SECONDS,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def wait_no_capacity(db_url: str, timeout: float = FRESH_SECONDS + 10) -> None:
    """Wait until no worker slot counts (a warm shutdown withdraws them at once; a killed worker's expire)."""
    deadline = time.monotonic() + timeout
    while live_slots(db_url) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("worker slots still count as live after the worker stopped")
        time.sleep(0.5)


def held_back(db_url: str, ids: list[str]) -> dict[str, int]:
    """Of ``ids``: how many were handed to Celery, and how many left Enqueued (both must be 0 before the start)."""
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FILTER (WHERE dispatched_at IS NOT NULL), "
                        "count(*) FILTER (WHERE state <> 'Enqueued'), count(*) FROM jobs WHERE id::text = ANY(%s)",
                        (ids,))
            dispatched, moved, found = cur.fetchone()
    finally:
        conn.close()
    return {"dispatched": int(dispatched), "not_enqueued": int(moved), "found": int(found)}


def drain_longrun(args: argparse.Namespace, procs: ProcSet, worker: Proc, env: dict[str, str], listener: Listener,
                  submit_url: str, body: dict, queue_key: str) -> dict:
    """Stop ``worker``, POST ``--drain`` jobs, check none went out, then start a worker and time the drain."""
    procs.stop(worker)  # a warm shutdown: its slots are withdrawn from worker_slots
    db_url = env["DATABASE_URL"]
    wait_no_capacity(db_url)
    ids, errors = post_many(submit_url, body, args.drain, args.client_threads)
    before = held_back(db_url, ids)
    queued = redis.Redis.from_url(env["REDIS_URL"]).llen(queue_key)
    if before["dispatched"] or before["not_enqueued"] or queued:
        raise RuntimeError(f"jobs went out with no worker running: {before}, {queued} messages in the queue")
    start: Callable[[], Proc] = lambda: procs.start(  # noqa: E731 - started inside the timed window
        "longrun-drain-worker", celery_worker_cmd("celery_worker", "bench-longrun-drain", args.worker_concurrency),
        env, ROOT)
    out = drain_timed(args, start, listener, [(jid, "Succeeded") for jid in ids], procs)
    out.update(http_errors=errors, waiting_before_start=before["found"], queue_before_start=queued)
    return out
