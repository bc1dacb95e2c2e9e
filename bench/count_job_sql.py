#!/usr/bin/env python3
"""Every SQL statement, transaction and Redis command of one Longrun job: the POST, then one attempt in the worker.

    .venv/bin/python bench/count_job_sql.py                  # the lists for one job (after a warm-up)
    .venv/bin/python bench/count_job_sql.py --profile 200    # plus where the CPU goes over 200 jobs (cProfile)

Runs the app in this process (the Flask test client for ``POST /reports/v2``, ``run_attempt`` as the Celery task
calls it) against its own database ``longrun_bench_peer_sql`` (re-created, dropped at the end) and Redis DB 3
(flushed). A ``worker_slots`` row stands for one idle worker with 2 slots, so the POST dispatches as on an idle
deployment. Statements come from SQLAlchemy's ``before_cursor_execute``; transactions from its commit/rollback
events and, as a cross-check, from ``pg_stat_database`` (what the server counted on this database).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import redis

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))

from benchlib import PG_HOST_URL, recreate_database  # noqa: E402

DB_NAME = "longrun_bench_peer_sql"
REDIS_URL = "redis://127.0.0.1:6379/3"
BODY = {"report": "demo", "params": {"duration_seconds": 0, "steps": 1}}


@dataclass
class Trace:
    """What one phase sent: statements (thread, text, ms), transaction ends, pool checkouts, Redis commands."""

    statements: list[tuple[str, str, float, str]] = field(default_factory=list)
    commits: int = 0
    rollbacks: int = 0
    checkouts: int = 0
    extras: int = 0
    redis: list[str] = field(default_factory=list)


class Recorder:
    """Engine and Redis hooks that append to the current ``Trace`` (None: not recording)."""

    def __init__(self) -> None:
        self.trace: Trace | None = None
        self._started: dict[int, float] = {}

    def before(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        """A statement is sent."""
        self._started[threading.get_ident()] = time.perf_counter()

    def after(self, _conn: object, _cursor: object, statement: str, _params: object, context: object, *_: object) -> None:
        """A statement answered: record it with its round-trip time and whether SQLAlchemy compiled it afresh."""
        took = (time.perf_counter() - self._started.pop(threading.get_ident(), time.perf_counter())) * 1000
        if self.trace is not None:
            # "generated in …" = compiled for this call (no cache hit): CPU spent on every job.
            stats = context._get_cache_stats() if hasattr(context, "_get_cache_stats") else ""
            mark = "compiled " if stats.startswith("generated") else ""
            self.trace.statements.append((threading.current_thread().name, mark + statement, took, _app_caller()))

    def commit(self, conn: object) -> None:
        """A transaction committed (nothing is sent when the server has no transaction open: autocommit)."""
        if self.trace is not None and _in_server_transaction(conn):
            self.trace.commits += 1
            self.trace.statements.append((threading.current_thread().name, "-- COMMIT", 0.0, _app_caller()))

    def rollback(self, conn: object) -> None:
        """A transaction rolled back (also a connection going back to the pool; free when none is open)."""
        if self.trace is not None and _in_server_transaction(conn):
            self.trace.rollbacks += 1
            self.trace.statements.append((threading.current_thread().name, "-- ROLLBACK", 0.0, _app_caller()))

    def checkout(self, *_: object) -> None:
        """A pooled connection handed out (pinged only if it sat idle: see ``ping``)."""
        if self.trace is not None:
            self.trace.checkouts += 1

    def extra(self, what: str) -> None:
        """A round trip of the connection's own: a ping, or the reset of an isolation level."""
        if self.trace is not None:
            self.trace.extras += 1
            self.trace.statements.append((threading.current_thread().name, f"-- {what}", 0.0, _app_caller()))

    def wrap_dialect(self, dialect: object) -> None:
        """Record the dialect's pings and its isolation-level changes that send a statement."""
        ping, set_level = dialect.do_ping, dialect.set_isolation_level

        def do_ping(dbapi_conn: object) -> bool:
            self.extra("ping (SELECT 1)")
            return ping(dbapi_conn)

        def set_isolation_level(dbapi_conn: object, level: str) -> None:
            if level != "AUTOCOMMIT":  # psycopg2: autocommit on is client-side; back off sends SET …
                self.extra(f"SET default_transaction_isolation ({level})")
            set_level(dbapi_conn, level)

        dialect.do_ping, dialect.set_isolation_level = do_ping, set_isolation_level

    def redis_command(self, original: Callable) -> Callable:
        """Wrap ``Redis.execute_command`` so every command is recorded by name."""
        recorder = self

        def execute_command(client: redis.Redis, *args: object, **kwargs: object) -> object:
            if recorder.trace is not None:
                recorder.trace.redis.append(str(args[0]))
            return original(client, *args, **kwargs)

        return execute_command

    def redis_pipeline(self, original: Callable) -> Callable:
        """Wrap ``Pipeline.execute``: one round trip carrying its queued commands."""
        recorder = self

        def execute(pipe: redis.client.Pipeline, *args: object, **kwargs: object) -> object:
            if recorder.trace is not None:
                names = "+".join(str(c[0][0]) for c in pipe.command_stack)
                recorder.trace.redis.append(f"pipeline[{names}]")
            return original(pipe, *args, **kwargs)

        return execute

    @contextmanager
    def recording(self) -> Iterator[Trace]:
        """Record into a fresh trace for the block."""
        self.trace = Trace()
        try:
            yield self.trace
        finally:
            self.trace = None


def _in_server_transaction(conn: object) -> bool:
    """Whether the server has a transaction open on this connection (psycopg2's libpq status is not idle)."""
    try:
        return conn.connection.dbapi_connection.info.transaction_status != 0
    except AttributeError:
        return True


def _app_caller() -> str:
    """The innermost frame of Longrun's own code on the stack: who sent the statement."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if f"{os.sep}app{os.sep}" in name and str(ROOT) in name:
            return f"{Path(name).parent.name}/{Path(name).name}:{frame.f_lineno} {frame.f_code.co_name}"
        frame = frame.f_back
    return "-"


def install(recorder: Recorder, engine: object) -> None:
    """Hook the recorder into SQLAlchemy's engine and pool, and into redis-py."""
    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", recorder.before)
    event.listen(engine, "after_cursor_execute", recorder.after)
    event.listen(engine, "commit", recorder.commit)
    event.listen(engine, "rollback", recorder.rollback)
    event.listen(engine.pool, "checkout", recorder.checkout)
    recorder.wrap_dialect(engine.dialect)
    redis.Redis.execute_command = recorder.redis_command(redis.Redis.execute_command)
    redis.client.Pipeline.execute = recorder.redis_pipeline(redis.client.Pipeline.execute)


def server_xacts(db_url: str) -> tuple[int, int]:
    """(commits, rollbacks) PostgreSQL counted on this database so far (stats flush within ~1 s of idling)."""
    # PostgreSQL 15 flushes an idle backend's counters up to 10 s late (PGSTAT_IDLE_INTERVAL): wait them out.
    time.sleep(11)
    conn = psycopg2.connect(db_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()")
            commits, rollbacks = cur.fetchone()
    finally:
        conn.close()
    # This connection's own read is a transaction too (counted when it closes: after this read).
    return int(commits), int(rollbacks)


def environment(db_url: str) -> dict[str, str]:
    """A testing Longrun on the bench database, without per-owner limits (as bench_jobs.py runs it)."""
    return {"LONGRUN_ENV": "testing", "SECRET_KEY": "x", "DATABASE_URL": db_url, "REDIS_URL": REDIS_URL,
            "LONGRUN_MAX_WAITING_PER_OWNER": "0", "LONGRUN_MAX_JOBS_PER_MINUTE": "0"}


def migrate(db_url: str) -> None:
    """A fresh database at the head revision."""
    recreate_database(DB_NAME)
    env = {**os.environ, **environment(db_url)}
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:app", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)


class JobDriver:
    """POSTs a job and runs its attempt in this process, as gunicorn and the Celery task would."""

    def __init__(self) -> None:
        from app import create_app
        from app.extensions import db

        self.app = create_app()
        self.db = db
        self.client = self.app.test_client()

    def offer_slots(self) -> None:
        """One idle worker with 2 slots, fresh for the whole run (the dispatcher counts it)."""
        from app.jobs.capacity import beat_worker

        with self.app.app_context():
            beat_worker("bench-count-sql@host", 2)
            self.db.session.remove()

    def post(self) -> str:
        """``POST /reports/v2`` (the test client runs the whole request, teardown included); the job id."""
        r = self.client.post("/reports/v2", json=BODY)
        if r.status_code != 202:
            raise RuntimeError(f"POST answered {r.status_code}: {r.get_data(as_text=True)[:300]}")
        return r.get_json()["id"]

    def attempt(self, job_id: str) -> str:
        """Run the job's attempt as the Celery task does (inside an app context); its final state."""
        from app.jobs.models import Job
        from app.jobs.runner import run_attempt

        with self.app.app_context():
            task_id = self.db.session.get(Job, job_id).celery_task_id
            self.db.session.remove()
        if task_id is None:
            raise RuntimeError(f"job {job_id} was not dispatched by its POST")
        with self.app.app_context():
            run_attempt(job_id, task_id)
            self.db.session.remove()  # what the task's app context teardown does
        with self.app.app_context():
            state = self.db.session.get(Job, job_id).state
            self.db.session.remove()
        return state

    def task_id_of(self, job_id: str) -> str:
        """Read outside any recording (the lookup the Celery message carries for free)."""
        from app.jobs.models import Job

        with self.app.app_context():
            task_id = self.db.session.get(Job, job_id).celery_task_id
            self.db.session.remove()
        return task_id

    def run_only(self, job_id: str, task_id: str) -> None:
        """Exactly the task body: ``run_attempt`` inside an app context."""
        from app.jobs.runner import run_attempt

        with self.app.app_context():
            run_attempt(job_id, task_id)


def _short(sql: str, width: int = 150) -> str:
    return re.sub(r"\s+", " ", sql).strip()[:width]


def print_trace(title: str, trace: Trace, server: tuple[int, int]) -> dict:
    """The statement list of one phase and its totals."""
    print(f"\n{title}")
    sent = [row for row in trace.statements if not row[1].startswith("--")]
    i = 0
    for thread, sql, ms, caller in trace.statements:
        where = "" if thread == "MainThread" else f" [{thread[:14]}]"
        if sql.startswith("--"):
            print(f"      {'':>9}{where}  {sql}   <- {caller}")
            continue
        i += 1
        print(f"  {i:>2}. {ms:6.2f} ms{where}  {_short(sql, 110):<110}  <- {caller}")
    kinds = Counter(_short(sql.removeprefix("compiled "), 200).split(" ")[0] for _, sql, _, _ in sent)
    compiled = sum(1 for _, sql, _, _ in sent if sql.startswith("compiled "))
    print(f"  statements: {len(sent)} ({', '.join(f'{k} {v}' for k, v in kinds.most_common())}); "
          f"commits {trace.commits}, rollbacks {trace.rollbacks} (of transactions open on the server), pool "
          f"checkouts {trace.checkouts}, pings and isolation resets {trace.extras}; PostgreSQL counted {server[0]} "
          f"commits, {server[1]} rollbacks; compiled afresh (no SQLAlchemy cache hit): {compiled}")
    # psycopg2 sends BEGIN before the first statement of each transaction; a ping runs in autocommit.
    print(f"  PostgreSQL round trips = statements + pings and resets + BEGIN and COMMIT/ROLLBACK of each server "
          f"transaction: {len(sent) + trace.extras + 2 * (trace.commits + trace.rollbacks)}")
    print(f"  Redis: {len(trace.redis)} round trips: {', '.join(trace.redis)}")
    return {"statements": [(t, _short(s, 400), ms, c) for t, s, ms, c in trace.statements], "commits": trace.commits,
            "rollbacks": trace.rollbacks, "checkouts": trace.checkouts, "extras": trace.extras, "server_xacts": server,
            "redis": trace.redis}


def measure_one(driver: JobDriver, recorder: Recorder, db_url: str) -> None:
    """Record one POST, then one attempt, each with the server's transaction counts."""
    driver.offer_slots()  # fresh: the waits below outlast a worker row's 20 s of freshness
    before = server_xacts(db_url)
    with recorder.recording() as post:
        job_id = driver.post()
    after_post = server_xacts(db_url)
    task_id = driver.task_id_of(job_id)
    driver.offer_slots()
    between = server_xacts(db_url)
    with recorder.recording() as attempt:
        driver.run_only(job_id, task_id)
    after_attempt = server_xacts(db_url)
    # Each server_xacts call counts two commits of its own: the backend's start-up and the read itself.
    post_x = (after_post[0] - before[0] - 2, after_post[1] - before[1])
    att_x = (after_attempt[0] - between[0] - 2, after_attempt[1] - between[1])
    print_trace("POST /reports/v2 (web process; test client, so no HTTP parsing by gunicorn)", post, post_x)
    print_trace("One attempt (Celery task body run_attempt: claim, report, Succeeded, dispatch)", attempt, att_x)


PACKAGES = (("app", "/app/"), ("sqlalchemy", "/sqlalchemy/"), ("flask/werkzeug/jinja", ("/flask/", "/werkzeug/", "/jinja2/")),
            ("celery/kombu", ("/celery/", "/kombu/")), ("redis-py", "/redis/"), ("psycopg2", "psycopg2"),
            ("json", "/json/"), ("logging", "/logging/"))


def _package(filename: str) -> str:
    for name, needles in PACKAGES:
        for needle in (needles if isinstance(needles, tuple) else (needles,)):
            if needle in filename:
                return name
    return "builtins" if filename == "~" else "other"


def cpu_split(profile: cProfile.Profile, jobs: int, title: str) -> None:
    """CPU per job by package (own time of its functions) and the costliest functions."""
    stats = pstats.Stats(profile)
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        by_package[_package(filename)] += tottime
    total = sum(by_package.values())
    print(f"\n{title}: {total / jobs * 1000:.2f} ms CPU per job (process time, cProfile overhead included)")
    print("  " + ", ".join(f"{k} {v / jobs * 1000:.2f} ms" for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])))
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][3])
    print("  costliest calls by cumulative CPU per job (app and SQLAlchemy session entry points):")
    shown = 0
    for (filename, line, name), (_cc, nc, _tt, cumtime, _callers) in rows:
        if "/app/" in filename or ("/sqlalchemy/orm/" in filename and name in {"commit", "flush", "execute", "_autoflush"}):
            print(f"    {cumtime / jobs * 1000:7.2f} ms  {nc / jobs:5.1f} calls  {Path(filename).name}:{line} {name}")
            shown += 1
        if shown >= 28:
            break


def profile(driver: JobDriver, jobs: int) -> None:
    """CPU split over ``jobs`` POSTs (one profile) and their attempts (another)."""
    posts, attempts = cProfile.Profile(time.process_time), cProfile.Profile(time.process_time)
    ids = []
    for i in range(jobs):
        if i % 10 == 0:
            driver.offer_slots()  # a profiled job is slow: keep the worker row fresh (20 s), outside the profile
        posts.enable()
        ids.append(driver.post())
        posts.disable()
        task_id = driver.task_id_of(ids[-1])
        attempts.enable()
        driver.run_only(ids[-1], task_id)
        attempts.disable()
    cpu_split(posts, jobs, f"CPU of the POST over {jobs} jobs")
    cpu_split(attempts, jobs, f"CPU of the attempt over {jobs} jobs")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warmup", type=int, default=10, help="jobs run before the recorded one (default 10)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="also profile N jobs' CPU (default: no)")
    p.add_argument("--keep-db", action="store_true", help=f"keep {DB_NAME}")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    db_url = f"{PG_HOST_URL}/{DB_NAME}"
    os.environ.update(environment(db_url))
    redis.Redis.from_url(REDIS_URL).flushdb()
    migrate(db_url)
    try:
        driver = JobDriver()
        driver.offer_slots()
        for _ in range(args.warmup):
            driver.attempt(driver.post())
        recorder = Recorder()
        with driver.app.app_context():
            install(recorder, driver.db.engine)
        measure_one(driver, recorder, db_url)
        if args.profile:
            driver.offer_slots()
            profile(driver, args.profile)
        return 0
    finally:
        redis.Redis.from_url(REDIS_URL).flushdb()
        if not args.keep_db:
            _drop(DB_NAME)


def _drop(name: str) -> None:
    conn = psycopg2.connect(f"{PG_HOST_URL}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


if __name__ == "__main__":
    sys.exit(main())
