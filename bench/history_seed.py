"""Seed N finished jobs (3 events each, a result per succeeded job) straight into PostgreSQL with generate_series.

The rows are what Longrun's lifecycle leaves behind, made reproducible: every "random" attribute is a seeded
hash of the row number (``hashint8extended``), so a job, its events and its result are consistent and the
same N gives the same database. Written against revision 0002's tables (the columns of ``jobs`` have not
changed since 0001): the caller then runs ``flask db upgrade``, whose migrations backfill every table they
keep at write time (0003's ``job_counters``, and whatever later revisions add) from these rows.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2

BIG_OWNER = "user:bigowner"  # the owner with (up to) 100,000 jobs; a token for it is `flask tokens create bigowner`
SPAN_DAYS = 7  # created over the last week: failed jobs are kept 168 h by default
SALES_DAYS = 3650  # sales_summary date_from spreads over ten years: a date matches ~1/3650 of those jobs
SHARDS_IN_ERRORS = 100_000  # "warehouse shard 01742 ...": an error term matches ~1/100,000 of failed jobs


def uniform(stream: int) -> str:
    """SQL: a reproducible uniform [0, 1) per row number ``i``, one independent stream per number."""
    return f"((hashint8extended(i, {stream}) & 9223372036854775807)::float8 / 9223372036854775807.0)"


@dataclass(frozen=True)
class SeedPlan:
    """What a seed of ``n`` jobs holds, so the benchmark can ask for it."""

    n: int

    @property
    def big_owner_jobs(self) -> int:
        """Jobs of BIG_OWNER: 100,000, or half of the table when it is smaller."""
        return min(100_000, self.n // 2)

    @property
    def every(self) -> int:
        """Every ``every``-th row belongs to BIG_OWNER."""
        return max(1, self.n // self.big_owner_jobs)

    @property
    def owners(self) -> int:
        """Distinct anonymous owners sharing the other jobs (about 20 jobs each)."""
        return max(10, self.n // 20)


def job_id_sql(i: str) -> str:
    """SQL: the id of seeded job number ``i`` (stable, random-looking)."""
    return f"md5('lr-bench-' || {i})::uuid"


def _source(plan: SeedPlan, first: int, last: int) -> str:
    """Rows first..last with their drawn attributes (created over SPAN_DAYS, newest = highest i)."""
    span = SPAN_DAYS * 86400.0
    return f"""
    SELECT i, {job_id_sql('i')} AS id,
           now() - make_interval(secs => ({plan.n} - i) * {span / plan.n}) AS created_at,
           CASE WHEN i % {plan.every} = 0 AND i / {plan.every} <= {plan.big_owner_jobs} THEN '{BIG_OWNER}'
                ELSE 'anon:' || md5('owner-' || (i % {plan.owners})) END AS owner,
           CASE WHEN {uniform(1)} < 0.7 THEN 'demo' ELSE 'sales_summary' END AS report,
           CASE WHEN {uniform(2)} < 0.85 THEN 'Succeeded' WHEN {uniform(2)} < 0.95 THEN 'Failed'
                ELSE 'Cancelled' END AS state,
           {uniform(3)} * 2.0 AS wait, {uniform(4)} * 120.0 AS took, {uniform(5)} AS r5,
           (hashint8extended(i, 6) & 2147483647) AS h6
    FROM generate_series({first}, {last}) AS i"""


def _drawn(plan: SeedPlan, first: int, last: int) -> str:
    """The source rows plus what follows from their draws: start, end, params and error."""
    return f"""
    SELECT s.*,
           CASE WHEN s.state = 'Cancelled' AND s.r5 < 0.5 THEN NULL
                ELSE s.created_at + make_interval(secs => s.wait) END AS started_at,
           CASE WHEN s.report = 'demo' THEN json_build_object('duration_seconds', round((s.took)::numeric, 1),
                                                              'steps', 1 + s.h6 % 20, 'fail_times', 0)
                ELSE json_build_object('group_by', (ARRAY['region', 'product', 'month'])[1 + s.h6 % 3],
                                       'date_from', to_char(date '2016-01-01' + (s.h6 % {SALES_DAYS})::int, 'YYYY-MM-DD'),
                                       'date_to', NULL, 'chunk_size', 20000) END AS params,
           CASE WHEN s.state = 'Failed' THEN (ARRAY['ConnectionError', 'TimeoutError', 'ValueError'])[1 + s.h6 % 3]
                END AS error_type,
           CASE WHEN s.state = 'Failed' THEN 'warehouse shard ' || lpad((s.h6 % {SHARDS_IN_ERRORS})::text, 5, '0')
                || ' did not answer within 30 s (attempt 3 of 3)' END AS error_message
    FROM ({_source(plan, first, last)}) AS s"""


def _chunk_sql(plan: SeedPlan, first: int, last: int) -> str:
    """One statement: jobs first..last, then their results and events from what the INSERT returned."""
    return f"""
    WITH d AS ({_drawn(plan, first, last)}),
    j AS (
      INSERT INTO jobs (id, owner, report, params, state, api_version, progress, progress_message, attempts,
                        max_attempts, cancel_requested, last_seq, created_at, updated_at, started_at, finished_at,
                        heartbeat_at, error_type, error_message, error_traceback, request_fingerprint,
                        celery_task_id, dispatched_at, worker)
      SELECT id, owner, report, params, state, 'v2', CASE WHEN state = 'Succeeded' THEN 1.0 ELSE r5 END,
             CASE WHEN state = 'Succeeded' THEN 'Done' END, CASE WHEN state = 'Failed' THEN 3 ELSE 1 END, 3,
             state = 'Cancelled', 3, created_at,
             coalesce(started_at, created_at) + make_interval(secs => took),
             started_at, coalesce(started_at, created_at) + make_interval(secs => took),
             CASE WHEN started_at IS NOT NULL THEN started_at + make_interval(secs => took) END,
             error_type, error_message,
             CASE WHEN error_type IS NOT NULL THEN 'Traceback (most recent call last):' || chr(10)
                  || '  File "app/reports/' || report || '.py", line 88, in ' || report || chr(10)
                  || '    rows = conn.execute(query).all()' || chr(10) || error_type || ': ' || error_message END,
             md5('fp-' || i), md5('task-' || i), created_at, 'celery@bench'
      FROM d
      RETURNING id, report, state, created_at, started_at, finished_at, attempts, error_message
    ),
    r AS (
      INSERT INTO job_results (job_id, filename, content_type, size, content, created_at)
      SELECT id, report || CASE WHEN report = 'demo' THEN '.txt' ELSE '.csv' END, 'text/plain', 24,
             convert_to('region,orders' || chr(10) || 'TOTAL,12' || chr(10), 'UTF8'), finished_at
      FROM j WHERE state = 'Succeeded'
    )
    INSERT INTO job_events (job_id, seq, kind, state, progress, message, attempt, created_at)
    SELECT j.id, e.seq,
           CASE WHEN e.seq = 2 AND j.started_at IS NULL THEN 'log' ELSE 'state' END,
           CASE e.seq WHEN 1 THEN 'Enqueued' WHEN 2 THEN (CASE WHEN j.started_at IS NULL THEN 'Enqueued'
                                                             ELSE 'Processing' END) ELSE j.state END,
           CASE WHEN e.seq = 3 AND j.state = 'Succeeded' THEN 1.0 ELSE 0.0 END,
           CASE e.seq WHEN 1 THEN 'Enqueued job with Id: ' || j.id
                      WHEN 2 THEN (CASE WHEN j.started_at IS NULL THEN 'Cancellation requested by owner'
                                        ELSE 'Processing (attempt 1)' END)
                      ELSE (CASE j.state WHEN 'Succeeded' THEN 'Succeeded' WHEN 'Failed' THEN 'Failed: ' || j.error_message
                                         ELSE 'Cancelled by owner' END) END,
           CASE WHEN e.seq = 1 THEN 0 ELSE j.attempts END,
           CASE e.seq WHEN 1 THEN j.created_at WHEN 2 THEN coalesce(j.started_at, j.created_at) ELSE j.finished_at END
    FROM j CROSS JOIN generate_series(1, 3) AS e(seq)
    """


def seed(dsn: str, plan: SeedPlan, chunk: int = 250_000, progress: Callable[[str], None] = print) -> float:
    """Insert ``plan.n`` jobs in chunks (each its own transaction); the seconds it took."""
    started = time.perf_counter()
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = off")  # benchmark data: a crash just means seeding again
            # No foreign-key trigger per event and result row: they point at jobs of the same statement by
            # construction (superuser only; the bench connects as postgres). Roughly halves the seed time.
            cur.execute("SET session_replication_role = replica")
            for first in range(1, plan.n + 1, chunk):
                last = min(plan.n, first + chunk - 1)
                cur.execute(_chunk_sql(plan, first, last))
                conn.commit()
                if plan.n > chunk:
                    progress(f"    seeded {last:,} / {plan.n:,} jobs ({time.perf_counter() - started:.0f} s)")
    finally:
        conn.close()
    return time.perf_counter() - started


def search_terms(dsn: str, plan: SeedPlan) -> dict[str, str]:
    """A job id, a params text and an error text that the seed holds (read back, not guessed)."""
    mid = max(1, plan.n // 2)
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT id::text FROM jobs WHERE id = {job_id_sql('%s')}", (mid,))
            job_id = cur.fetchone()[0]
            cur.execute("SELECT params->>'date_from' FROM jobs WHERE report = 'sales_summary' "
                        "ORDER BY created_at DESC LIMIT 1")
            date = cur.fetchone()[0]
            cur.execute("SELECT substring(error_message from 'shard [0-9]+') FROM jobs WHERE state = 'Failed' "
                        "ORDER BY created_at DESC LIMIT 1")
            shard = cur.fetchone()[0]
    finally:
        conn.close()
    return {"id": job_id, "params": date, "error": shard}
