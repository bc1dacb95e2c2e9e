"""Seed waiting jobs for bench_dispatch.py straight into PostgreSQL, with the rows the app keeps at write time.

A job that waits is what ``app.jobs.service.submit_job`` leaves behind when no worker slot is free: an
``Enqueued`` row with ``dispatched_at`` NULL, its first event (seq 1), +1 on its owner's ``owner_queues.waiting``
(app/jobs/slots.py) and +1 on the ``created`` and ``in_state/Enqueued`` counters (app/jobs/counters.py). Those are
written here with one INSERT … SELECT generate_series each, so 10,000 jobs take about a second instead of the
~2 minutes of 10,000 HTTP submissions.

Owners are ``bench:o00000``, ``bench:o00001``, …; owner ``o`` has per-owner job numbers ``j``, created at
``base + (o * per_owner_max + j)`` ms: every owner's jobs come as one batch, owner 0's first. A plain FIFO queue
would therefore serve owner 0's whole batch before owner 1 sees a worker; fair dispatch must not.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import psycopg2

OWNER_PREFIX = "bench:o"


@dataclass(frozen=True)
class JobShape:
    """What every seeded job asks for: the report, its validated params, their fingerprint and the priority."""

    report: str
    params: dict
    fingerprint: str
    priority: int
    max_attempts: int


def owner_name(number: int, prefix: str = OWNER_PREFIX) -> str:
    """The seeded owner with this number."""
    return f"{prefix}{number:05d}"


def seed_waiting(db_url: str, shape: JobShape, owners: range, jobs: range, per_owner_max: int, base: datetime,
                 prefix: str = OWNER_PREFIX) -> int:
    """Add per-owner jobs numbered ``jobs`` for each owner in ``owners`` (all waiting); how many were added.

    ``base`` is the same for every call of one run, so jobs added later still sort owner by owner.
    """
    count = len(owners) * len(jobs)
    if count == 0:
        return 0
    conn = psycopg2.connect(db_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(_INSERT_JOBS, {
                "prefix": prefix, "report": shape.report, "params": json.dumps(shape.params),
                "fingerprint": shape.fingerprint, "priority": shape.priority, "max_attempts": shape.max_attempts,
                "o0": owners.start, "o1": owners.stop - 1, "j0": jobs.start, "j1": jobs.stop - 1,
                "per": per_owner_max, "base": base,
            })
            # The same transaction as the rows: the owners' lines and the counters always match the jobs.
            cur.execute(_UPSERT_OWNER_QUEUES, {"prefix": prefix, "o0": owners.start, "o1": owners.stop - 1,
                                               "n": len(jobs)})
            cur.execute(_UPSERT_COUNTERS, {"report": shape.report, "n": count})
    finally:
        conn.close()
    return count


def seed_idle_owners(db_url: str, count: int, first: int) -> None:
    """``count`` owners who once submitted and have nothing waiting or running (an ``owner_queues`` row each)."""
    conn = psycopg2.connect(db_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO owner_queues (owner, waiting, inflight, served_at) "
                "SELECT 'bench:idle' || lpad(o::text, 7, '0'), 0, 0, now() - make_interval(secs => o) "
                "FROM generate_series(%(o0)s, %(o1)s) o ON CONFLICT (owner) DO NOTHING",
                {"o0": first, "o1": first + count - 1})
    finally:
        conn.close()


def seed_finished(db_url: str, shape: JobShape, count: int, seconds: float) -> None:
    """``count`` succeeded jobs of ``seconds`` each, a day old: the recent runs a predicted start is made from."""
    conn = psycopg2.connect(db_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO jobs (id, owner, report, params, state, api_version, priority, progress, attempts, "
                "max_attempts, cancel_requested, last_seq, created_at, updated_at, started_at, finished_at) "
                "SELECT gen_random_uuid(), 'bench:history', %(report)s, %(params)s::json, 'Succeeded', 'v2', "
                "%(priority)s, 1, 1, %(max_attempts)s, false, 0, t, t, t, t + make_interval(secs => %(secs)s) "
                "FROM (SELECT now() - interval '1 day' + make_interval(secs => i) AS t "
                "      FROM generate_series(1, %(n)s) i) s",
                {"report": shape.report, "params": json.dumps(shape.params), "priority": shape.priority,
                 "max_attempts": shape.max_attempts, "secs": seconds, "n": count})
            cur.execute("INSERT INTO job_counters (name, report, label, shard, value, seconds) "
                        "VALUES ('created', %(r)s, '', 0, %(n)s, 0), ('in_state', %(r)s, 'Succeeded', 0, %(n)s, 0) "
                        "ON CONFLICT (name, report, label, shard) DO UPDATE SET value = job_counters.value + "
                        "excluded.value", {"r": shape.report, "n": count})
    finally:
        conn.close()


def vacuum_analyze(db_url: str, tables: tuple[str, ...] = ("jobs", "job_events", "owner_queues")) -> None:
    """What autovacuum would do a minute after a bulk load: fresh statistics and visibility map."""
    conn = psycopg2.connect(db_url)
    conn.autocommit = True  # VACUUM cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            for table in tables:
                cur.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        conn.close()


_INSERT_JOBS = """
WITH new AS (
    INSERT INTO jobs (id, owner, report, params, state, api_version, priority, progress, attempts, max_attempts,
                      cancel_requested, last_seq, created_at, updated_at, request_fingerprint,
                      celery_task_id, dispatched_at)
    SELECT gen_random_uuid(), %(prefix)s || lpad(o::text, 5, '0'), %(report)s, %(params)s::json, 'Enqueued', 'v2',
           %(priority)s, 0, 0, %(max_attempts)s, false, 1,
           %(base)s + make_interval(secs => (o * %(per)s + j) / 1000.0), now(), %(fingerprint)s, NULL, NULL
    FROM generate_series(%(o0)s, %(o1)s) o, generate_series(%(j0)s, %(j1)s) j
    RETURNING id, created_at
)
INSERT INTO job_events (job_id, seq, kind, state, progress, message, attempt, created_at)
SELECT id, 1, 'state', 'Enqueued', 0, 'Enqueued job with Id: ' || id, 0, created_at FROM new
"""

_UPSERT_OWNER_QUEUES = """
INSERT INTO owner_queues (owner, waiting, inflight, served_at)
SELECT %(prefix)s || lpad(o::text, 5, '0'), %(n)s, 0, NULL FROM generate_series(%(o0)s, %(o1)s) o
ON CONFLICT (owner) DO UPDATE SET waiting = owner_queues.waiting + excluded.waiting
"""

_UPSERT_COUNTERS = """
INSERT INTO job_counters (name, report, label, shard, value, seconds)
VALUES ('created', %(report)s, '', 0, %(n)s, 0), ('in_state', %(report)s, 'Enqueued', 0, %(n)s, 0)
ON CONFLICT (name, report, label, shard) DO UPDATE SET value = job_counters.value + excluded.value
"""
