#!/usr/bin/env python3
"""Fair dispatch under a backlog: the cost of one dispatch decision at 0 to 10,000 waiting jobs, a new owner's
pickup while 10,000 jobs of 100 owners drain, per-owner fairness over the drain, and idle pickup.

    .venv/bin/python bench/bench_dispatch.py              # default: 10,000 waiting, first 2,000 drained (~3 min)
    .venv/bin/python bench/bench_dispatch.py --drain 0    # drain all 10,000 (5-15 more minutes)
    .venv/bin/python bench/bench_dispatch.py --sizes 0,100,1000 --wide-owners 0 --idle-owners 0 --drain 300
    .venv/bin/python bench/bench_dispatch.py --help

It owns what it touches: PostgreSQL databases ``longrun_bench_dispatch`` and ``longrun_bench_dispatch_*`` (one
per queue shape; re-created, dropped at the end), Redis DB 6 (flushed), one port in 5400-5499, and the gunicorn /
celery / clock processes it starts (each in its own session, stopped on exit, failure or Ctrl-C). See
bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import redis
import requests
from flask import Flask

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))

from bench_jobs import Listener, base_env, celery_worker_cmd, state_keys, venv_bin  # noqa: E402
from benchlib import PG_HOST_URL, Proc, ProcSet, free_port, loadavg, recreate_database  # noqa: E402
from dispatch_decisions import (  # noqa: E402
    DecisionStats,
    Queue,
    StatementLog,
    capture_decision,
    explain,
    time_decisions,
    time_full_decisions,
    time_queue_place,
)
from dispatch_report import (  # noqa: E402
    drain_rates,
    fairness_windows,
    ms,
    print_decisions,
    print_drain,
    print_fairness,
    print_growth,
    print_pickup,
    print_plan,
    print_table,
)
from dispatch_seed import (  # noqa: E402
    OWNER_PREFIX,
    JobShape,
    owner_name,
    seed_finished,
    seed_idle_owners,
    seed_waiting,
    vacuum_analyze,
)

from app.channels import Namespace  # noqa: E402
from app.config import default_instance  # noqa: E402 - after the path fix

DEFAULT_DB = "longrun_bench_dispatch"
DEFAULT_REDIS_DB = 6
PORT_RANGE = range(5400, 5500)


@dataclass
class Run:
    """What one run works with: settings, URLs, processes, the in-process app and what it measured."""

    args: argparse.Namespace
    db_url: str
    redis_url: str
    env: dict[str, str]
    procs: ProcSet
    base: str = ""
    app: Flask | None = None
    shape: JobShape | None = None
    web: Proc | None = None
    extra_dbs: list[str] = field(default_factory=list)
    results: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- setup
def make_run(args: argparse.Namespace, logdir: Path) -> Run:
    """Settings for every process of the run, and the database and Redis DB it owns."""
    db_url = f"{PG_HOST_URL}/{args.db_name}"
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    port = free_port(PORT_RANGE)
    env = base_env({"LONGRUN_ENV": "testing", "SECRET_KEY": "x", "DATABASE_URL": db_url, "REDIS_URL": redis_url,
                    "PORT": str(port), "WEB_CONCURRENCY": "1",
                    # The probes come from new owners, the idle ones from one: no per-minute throttle on them.
                    "LONGRUN_MAX_JOBS_PER_MINUTE": "0"})
    run = Run(args, db_url, redis_url, env, ProcSet(logdir, ROOT, stop_timeout=20.0), base=f"http://127.0.0.1:{port}")
    return run


def setup_storage(run: Run) -> None:
    """Fresh database (migrated with ``flask db upgrade``) and an empty Redis DB."""
    recreate_database(run.args.db_name)
    redis.Redis.from_url(run.redis_url).flushdb()
    mig = subprocess_run([venv_bin("flask"), "--app", "wsgi:app", "db", "upgrade"], run.env)
    if mig.returncode != 0:
        raise RuntimeError(f"migration failed:\n{mig.stdout[-2000:]}\n{mig.stderr[-2000:]}")


def subprocess_run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a short command in the project root."""
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def in_process_app(run: Run) -> None:
    """This process as one more Longrun process (same settings): it times decisions with the real code."""
    os.environ.clear()
    os.environ.update(run.env)
    from app.jobs.service import fingerprint
    from app.reports import get_report
    from app.reports.params import to_json_params

    run.app = make_app(run, run.db_url)
    with run.app.app_context():
        report = get_report("demo")
        params = to_json_params(report.validate({"duration_seconds": run.args.job_seconds, "steps": 1}))
        run.shape = JobShape(report.name, params, fingerprint(report.name, params), report.priority,
                             report.max_attempts)


def make_app(run: Run, db_url: str) -> Flask:
    """A Longrun app on ``db_url`` with the run's other settings (its own engine, Celery app and namespace)."""
    from app import create_app

    os.environ["DATABASE_URL"] = db_url
    try:
        return create_app()
    finally:
        os.environ["DATABASE_URL"] = run.db_url


def dispose(app: Flask) -> None:
    """Close an app's pooled connections (before its database is dropped)."""
    from app.extensions import db

    with app.app_context():
        db.engine.dispose()


def drop_databases(names: list[str]) -> None:
    """DROP DATABASE … WITH (FORCE) each."""
    conn = psycopg2.connect(f"{PG_HOST_URL}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def drop_storage(run: Run) -> None:
    """Drop every database of the run and flush the Redis DB (the main database stays with --keep-db)."""
    redis.Redis.from_url(run.redis_url).flushdb()
    drop_databases(run.extra_dbs)
    if run.args.keep_db:
        print(f"database {run.args.db_name} kept")
        return
    if run.app is not None:
        dispose(run.app)
    drop_databases([run.args.db_name])


# --------------------------------------------------------------------------- processes
def start_web(run: Run) -> None:
    """gunicorn with the project's gunicorn.conf.py (one worker), as in production."""
    run.web = run.procs.start("gunicorn", [venv_bin("gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], run.env,
                              stop_signal=signal.SIGINT)
    run.web.wait_http(run.base + "/reports", timeout=60)


def start_workers(run: Run) -> tuple[Proc, Proc]:
    """A prefork Celery worker (``--worker-concurrency`` slots) and the clock process, both ready."""
    worker = run.procs.start("worker", celery_worker_cmd("celery_worker", "bench-dispatch",
                                                         run.args.worker_concurrency), run.env)
    clock = run.procs.start("clock", [venv_bin("flask"), "--app", "wsgi:app", "clock"], run.env)
    worker.wait_log(" ready.", 60)
    clock.wait_log("clock started", 60)
    return worker, clock


def stop_workers(run: Run, worker: Proc, clock: Proc) -> None:
    """Warm shutdown of the worker (it withdraws its slots), then the clock; no capacity is left announced."""
    run.procs.stop(worker)
    run.procs.stop(clock)
    conn = psycopg2.connect(run.db_url)
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM worker_slots")  # a worker killed after its grace leaves its row: drop it now
    conn.close()


def log_errors(*procs: Proc) -> list[str]:
    """ERROR lines and tracebacks in the processes' logs."""
    return [f"{p.name}: {ln}" for p in procs for ln in p.log_text().splitlines()
            if " ERROR" in ln or "Traceback" in ln][:10]


# --------------------------------------------------------------------------- live measurements
def post_job(run: Run, session: requests.Session) -> tuple[str, float]:
    """POST one job as the session's owner: (id, perf_counter when sent)."""
    body = {"report": "demo", "params": {"duration_seconds": run.args.job_seconds, "steps": 1}}
    t0 = time.perf_counter()
    r = session.post(run.base + "/reports/v2", json=body, timeout=30)
    if r.status_code != 202:
        raise RuntimeError(f"POST /reports/v2 answered {r.status_code}: {r.text[:300]}")
    return r.json()["id"], t0


def wait_state(listener: Listener, job_id: str, state: str, timeout: float) -> float:
    """When the job's ``state`` event arrived (perf_counter); raises if it never does."""
    got = listener.wait((job_id, state), timeout)
    if got is None:
        raise RuntimeError(f"job {job_id} never reached {state} within {timeout:.0f} s")
    return got[0]


def idle_pickup(run: Run, listener: Listener) -> tuple[list[float], list[str]]:
    """Sequential jobs of one owner on idle workers and an empty queue: POST → Processing, each job finished."""
    session = requests.Session()
    client, ids = [], []
    for i in range(run.args.warmup + run.args.idle_probes):
        job_id, t0 = post_job(run, session)
        processing = wait_state(listener, job_id, "Processing", run.args.job_timeout)
        wait_state(listener, job_id, "Succeeded", run.args.job_timeout + run.args.job_seconds)
        if i >= run.args.warmup:
            client.append(processing - t0)
            ids.append(job_id)
    return client, ids


def backlog_probes(run: Run, listener: Listener) -> tuple[list[float], list[str], list[int]]:
    """New owners, one job each, while the backlog drains: POST → Processing; and the backlog at each probe."""
    client, ids, backlog = [], [], []
    for _ in range(run.args.probes):
        time.sleep(run.args.probe_gap)
        backlog.append(waiting_now(run.db_url))
        job_id, t0 = post_job(run, requests.Session())  # a fresh cookie jar: a new anonymous owner
        client.append(wait_state(listener, job_id, "Processing", run.args.job_timeout) - t0)
        ids.append(job_id)
    return client, ids, backlog


def waiting_now(db_url: str) -> int:
    """Jobs waiting now (the owners' lines)."""
    return int(query(db_url, "SELECT coalesce(sum(waiting), 0) FROM owner_queues")[0][0])


def seeded_done(db_url: str) -> int:
    """Seeded jobs finished so far."""
    return int(query(db_url, "SELECT count(*) FROM jobs WHERE owner LIKE %s AND finished_at IS NOT NULL",
                     OWNER_PREFIX + "%")[0][0])


def query(db_url: str, sql: str, *params: object) -> list[tuple]:
    """Rows of one query on its own connection."""
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def owner_queue_drift(db_url: str) -> int:
    """Owners whose ``owner_queues`` row disagrees with their jobs (waiting / in flight): must be 0."""
    return int(query(db_url, _DRIFT)[0][0])


_DRIFT = """
WITH actual AS (
    SELECT owner,
           count(*) FILTER (WHERE dispatched_at IS NULL AND state IN ('Enqueued', 'Retrying')) AS waiting,
           count(*) FILTER (WHERE (dispatched_at IS NOT NULL AND state IN ('Enqueued', 'Retrying'))
                            OR state = 'Processing') AS inflight
    FROM jobs GROUP BY owner)
SELECT count(*) FROM owner_queues q FULL JOIN actual a USING (owner)
WHERE coalesce(q.waiting, 0) <> coalesce(a.waiting, 0) OR coalesce(q.inflight, 0) <> coalesce(a.inflight, 0)
"""


def wait_drained(run: Run, target: int, timeout: float) -> int:
    """Wait until ``target`` seeded jobs finished (or the timeout); how many did."""
    deadline = time.monotonic() + timeout
    done = seeded_done(run.db_url)
    while done < target and time.monotonic() < deadline:
        time.sleep(0.5)
        done = seeded_done(run.db_url)
    return done


def db_pickups(db_url: str, ids: list[str]) -> dict[str, list[float]]:
    """Where these jobs' pickup went, from their rows (seconds): whole, before the dispatch, after it."""
    rows = query(db_url, "SELECT extract(epoch FROM started_at - created_at), extract(epoch FROM dispatched_at - "
                         "created_at), extract(epoch FROM started_at - dispatched_at) FROM jobs "
                         "WHERE id::text = ANY(%s) AND started_at IS NOT NULL AND dispatched_at IS NOT NULL", ids)
    return {"jobs.created_at -> started_at (DB)": [float(r[0]) for r in rows],
            "  created_at -> dispatched_at (slot wait + decision)": [float(r[1]) for r in rows],
            "  dispatched_at -> started_at (queue hop + claim)": [float(r[2]) for r in rows]}


# --------------------------------------------------------------------------- phases
def phase_idle(run: Run, listener: Listener) -> None:
    """Empty queue, idle workers: POST → Processing, as bench_jobs.py's pickup."""
    print(f"phase 1: idle pickup ({run.args.warmup} warm-up + {run.args.idle_probes} sequential jobs)")
    worker, clock = start_workers(run)
    try:
        client, ids = idle_pickup(run, listener)
    finally:
        run.results["idle_errors"] = log_errors(worker, clock)
        stop_workers(run, worker, clock)
    run.results["idle"] = (client, db_pickups(run.db_url, ids))


@dataclass(frozen=True)
class QueueSpec:
    """A queue shape to time decisions on: its database, owners, waiting jobs each, and idle owner rows."""

    label: str
    db_name: str
    owners: int
    per_owner: int
    idle_owners: int = 0


def main_label(args: argparse.Namespace) -> str:
    """The label of the queues that differ only in length."""
    return f"{args.owners} owners"


def queue_specs(args: argparse.Namespace) -> list[QueueSpec]:
    """The main sizes (the largest is the drain's database), then the wide and the long-history variants."""
    top = max(args.sizes)
    specs = [QueueSpec(main_label(args), args.db_name if size == top else f"{args.db_name}_q{size}", args.owners,
                       size // args.owners) for size in args.sizes]
    if args.wide_owners:
        specs.append(QueueSpec(f"{args.wide_owners:,} owners, 1 job each", f"{args.db_name}_wide",
                               args.wide_owners, 1))
    if args.idle_owners:
        specs.append(QueueSpec(f"{main_label(args)} + {args.idle_owners:,} idle owner rows", f"{args.db_name}_idle",
                               args.owners, top // args.owners, args.idle_owners))
    return specs


def create_queue_databases(run: Run) -> None:
    """Every queue's database but the main one, copied from the freshly migrated main one (no one connected)."""
    conn = psycopg2.connect(f"{PG_HOST_URL}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for spec in queue_specs(run.args):
            if spec.db_name != run.args.db_name:
                cur.execute(f'DROP DATABASE IF EXISTS "{spec.db_name}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{spec.db_name}" TEMPLATE "{run.args.db_name}"')
                run.extra_dbs.append(spec.db_name)
    conn.close()


def seed_queue(run: Run, spec: QueueSpec, base: datetime) -> Queue:
    """Fill one queue's database and give it an app of its own in this process."""
    db_url = f"{PG_HOST_URL}/{spec.db_name}"
    seed_waiting(db_url, run.shape, range(spec.owners), range(spec.per_owner), max(1, spec.per_owner), base)
    if spec.idle_owners:
        seed_idle_owners(db_url, spec.idle_owners, 0)
    if db_url != run.db_url:
        seed_finished(db_url, run.shape, 20, 0.02)  # the main one has the idle phase's jobs
    vacuum_analyze(db_url)
    app = run.app if db_url == run.db_url else make_app(run, db_url)
    from app.extensions import db

    with app.app_context():
        return Queue(spec.label, db_url, app, StatementLog(db.engine))


def phase_decisions(run: Run) -> None:
    """Decisions timed on every queue in turn, no worker running (capacity announced by this process)."""
    args = run.args
    base = datetime.now(timezone.utc) - timedelta(hours=1)
    queues = [seed_queue(run, spec, base) for spec in queue_specs(args)]
    print(f"phase 2: decisions on {len(queues)} queues in turn ({', '.join(q.label for q in queues)})")
    stats: list[DecisionStats] = []
    for slots in args.decision_slots:
        # A burst hands out many jobs per decision: fewer of them give as many jobs.
        stats += time_decisions(queues, slots, args.decisions if slots == 1 else max(10, args.decisions // 5))
    main = [q for q in queues if q.label == main_label(args)]
    stats += time_full_decisions(main, ", no free slot", args.decisions)
    run.results["decisions"] = stats
    run.results["queue_place"] = time_queue_place(main, 20)
    run.results["plans"] = capture_plans(run, queues)
    run.results["drift_after_decisions"] = owner_queue_drift(run.db_url)
    for q in queues:
        if q.app is not run.app:
            dispose(q.app)
    redis.Redis.from_url(run.redis_url).flushdb()  # the messages of the decisions above: no worker may run them
    drop_databases(run.extra_dbs)
    run.extra_dbs.clear()


def capture_plans(run: Run, queues: list[Queue]) -> dict[str, tuple[str, str, list[str], str | None]]:
    """EXPLAIN ANALYZE of one real decision's statements: (title, SQL, plan, index it should read)."""
    main = next(q for q in queues if q.db_url == run.db_url)
    wanted = [(main, "owner pick", "ix_owner_queues_turn"), (main, "next job", "ix_jobs_waiting_turn")]
    wanted += [(q, "owner pick", "ix_owner_queues_turn") for q in queues if q.label.endswith("1 job each")]
    wanted += [(q, "in flight", None) for q in queues if "idle owner rows" in q.label]
    out = {}
    for queue, kind, index in wanted:
        captured = capture_decision(queue, max(run.args.decision_slots))
        statement = next((s for s in captured if s.kind == kind), None)
        if statement is None:
            raise RuntimeError(f"no {kind!r} statement in the decision on {queue.label}: {[s.kind for s in captured]}")
        title = f"{kind}, {queue.label}, {waiting_now(queue.db_url):,} waiting"
        out[title] = (statement.sql, explain(queue.db_url, statement), index)
    return out


def phase_drain(run: Run, listener: Listener) -> None:
    """Start the worker and clock on the backlog; probe a new owner's pickup; wait for the drain window."""
    args = run.args
    total = max(args.sizes)
    target = total if args.drain == 0 else min(args.drain, total)
    print(f"phase 3: drain {target:,} of {total:,} waiting jobs ({args.job_seconds:g} s each), "
          f"{args.probes} new-owner probes {args.probe_gap:g} s apart")
    worker, clock = start_workers(run)
    try:
        client, ids, backlog = backlog_probes(run, listener)
        done = wait_drained(run, target, args.drain_timeout)
    finally:
        run.results["drain_errors"] = log_errors(worker, clock)
        stop_workers(run, worker, clock)
    run.results["probes"] = (client, db_pickups(run.db_url, ids), backlog)
    run.results["drift_after_drain"] = owner_queue_drift(run.db_url)
    run.results["drained"] = (done, target, total)


# --------------------------------------------------------------------------- report
def report(run: Run) -> dict:
    """Print every table; the headline figures as a dict (for --json)."""
    args, res = run.args, run.results
    print("\n" + "=" * 100)
    print(f"Fair dispatch benchmark — {datetime.now().isoformat(timespec='seconds')}  (cpus={os.cpu_count()}, "
          f"worker -c {args.worker_concurrency}, {args.owners} owners, sizes {args.sizes}, "
          f"jobs of {args.job_seconds:g} s)")
    print(f"load average at start {args.load_start}, at end {loadavg()}"
          + ("   WARNING: other work on this machine skews the figures" if float(args.load_start.split()[0]) > 1
             else ""))
    out: dict = {}
    stats = res.get("decisions", [])
    if stats:
        out["decisions"] = report_decisions(run, stats)
    if "probes" in res:
        client, db_s, backlog = res["probes"]
        out["backlog_pickup"] = print_pickup(
            f"2. Pickup of a new owner's job while the backlog drains ({min(backlog):,}-{max(backlog):,} waiting "
            "at the probes)", client, db_s)
        out["fairness"], out["drain"] = report_drain(run)
    if "idle" in res:
        out["idle_pickup"] = print_pickup("5. Idle pickup (empty queue, idle workers, one owner, sequential)",
                                          *res["idle"], target_ms=50)
    print(f"\n   owner_queues rows disagreeing with the jobs table: {res.get('drift_after_decisions')} after the "
          f"decisions, {res.get('drift_after_drain')} after the drain (must be 0)")
    for line in res.get("idle_errors", []) + res.get("drain_errors", []):
        print(f"  log: {line[:200]}")
    return out


def report_decisions(run: Run, stats: list[DecisionStats]) -> dict:
    """Table 1, the growth ratios, queue_place and the plans."""
    print_decisions(stats)
    sizes = [s for s in run.args.sizes if s]
    growth: dict[str, float] = {}
    if len(sizes) > 1:
        label = main_label(run.args)
        growth.update(print_growth(stats, label, sizes[0], sizes[-1]))
        growth.update(print_growth(stats, label + ", no free slot", sizes[0], sizes[-1]))
    places = run.results.get("queue_place", [])
    rows = [[f"{waiting:,}", f"{pos:,}", fmt_ms(times, 50), fmt_ms(times, 99)] for waiting, pos, times in places
            if times]
    if rows:
        print_table("   queue_place() of the newest waiting job (GET /jobs/<id> and each socket showing it pay this "
                    "per move)", ["waiting", "its position", "p50 ms", "p99 ms"], rows)
    for title, (sql, plan, index) in run.results.get("plans", {}).items():
        print_plan(title, sql, plan, index)
    return {"growth": growth, "rows": [{"label": s.label, "waiting": s.waiting, "slots": s.slots,
                                        "p50_ms": ms(s.seconds, 50), "p99_ms": ms(s.seconds, 99),
                                        "jobs_per_decision": s.jobs_per_decision()} for s in stats]}


def fmt_ms(values: list[float], p: float) -> str:
    """Percentile of seconds as a millisecond string."""
    return f"{ms(values, p):.2f}"


def report_drain(run: Run) -> tuple[list[dict], dict]:
    """Tables 3 and 4 from the seeded jobs' finish times."""
    done, target, total = run.results["drained"]
    rows = query(run.db_url, "SELECT owner, finished_at, state FROM jobs WHERE owner LIKE %s "
                             "AND finished_at IS NOT NULL ORDER BY finished_at, id", OWNER_PREFIX + "%")
    states: dict[str, int] = {}
    for _, _, state in rows:
        states[state] = states.get(state, 0) + 1
    print(f"\n   drained {done:,} of the {target:,} asked ({total:,} seeded); states: {json.dumps(states)}")
    owners = [owner_name(i) for i in range(run.args.owners)]
    per_owner = total // run.args.owners
    finished = [(o, t) for o, t, _ in rows]
    fairness = print_fairness(fairness_windows(finished, owners, per_owner, target), per_owner)
    window = min(run.args.rate_window, max(1, len(finished) // 2))  # at least two windows in a short drain
    drain = print_drain(drain_rates([t for _, t in finished], total, window))
    return fairness, drain


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags; every size has a default for the ~3-minute run."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--owners", type=int, default=100, help="owners sharing the backlog (default 100)")
    p.add_argument("--sizes", type=_ints, default=[0, 100, 1000, 10000],
                   help="waiting jobs at which decisions are timed, ascending, multiples of --owners; the largest is "
                        "the backlog that drains (default 0,100,1000,10000)")
    p.add_argument("--decision-slots", type=_ints, default=[1, 20],
                   help="free worker slots per timed decision (default 1,20: a job ended; a burst of 20)")
    p.add_argument("--decisions", type=int, default=100,
                   help="timed decisions per queue with 1 or 0 free slots; a fifth (at least 10) with more (100)")
    p.add_argument("--wide-owners", type=int, default=10000,
                   help="also time decisions over this many waiting owners with one job each (0: skip)")
    p.add_argument("--idle-owners", type=int, default=100000,
                   help="also time decisions with this many owner rows that wait for nothing (0: skip)")
    p.add_argument("--drain", type=int, default=2000, help="completions to wait for (0: the whole backlog)")
    p.add_argument("--drain-timeout", type=float, default=1800.0, help="seconds to wait for the drain (1800)")
    p.add_argument("--rate-window", type=int, default=1000, help="completions per drain-rate window (1000)")
    p.add_argument("--job-seconds", type=float, default=0.0, help="demo job duration of every job (default 0)")
    p.add_argument("--probes", type=int, default=20, help="new-owner pickup probes during the drain (20)")
    p.add_argument("--probe-gap", type=float, default=0.5, help="seconds between probes (0.5)")
    p.add_argument("--idle-probes", type=int, default=50, help="sequential idle pickup jobs (50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed idle jobs first (5)")
    p.add_argument("--job-timeout", type=float, default=30.0, help="seconds to wait for one job's event")
    p.add_argument("--worker-concurrency", type=int, default=2, help="celery -c (default 2)")
    p.add_argument("--db-name", default=DEFAULT_DB, help=f"PostgreSQL database, re-created ({DEFAULT_DB})")
    p.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB, help=f"Redis DB, flushed ({DEFAULT_REDIS_DB})")
    p.add_argument("--keep-db", action="store_true", help="keep the database at the end")
    p.add_argument("--keep-logs", action="store_true", help="keep the process logs directory")
    p.add_argument("--json", metavar="PATH", help="also write the headline figures as JSON")
    args = p.parse_args(argv)
    _check(p, args)
    return args


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.sizes != sorted(args.sizes) or any(s % args.owners for s in args.sizes) or max(args.sizes) <= 0:
        p.error("--sizes must ascend, be multiples of --owners and end above 0")
    if args.redis_db in (0, 15) or args.db_name in {"postgres", "longrun_test", "template0", "template1"}:
        p.error("that database or Redis DB belongs to others")
    if min(args.owners, args.decisions, args.worker_concurrency, min(args.decision_slots)) < 1:
        p.error("counts must be >= 1")


def main(argv: list[str] | None = None) -> int:
    """Run every phase, print the tables, clean up."""
    args = parse_args(argv)
    args.load_start = loadavg()
    logdir = Path(tempfile.mkdtemp(prefix="longrun-bench-dispatch-"))
    run = make_run(args, logdir)
    signal.signal(signal.SIGTERM, lambda signum, _f: sys.exit(128 + signum))
    started, failed, listener = time.perf_counter(), True, None
    try:
        print(f"setup: database {args.db_name} (re-created), Redis DB {args.redis_db} (flushed), logs in {logdir}")
        setup_storage(run)
        create_queue_databases(run)
        in_process_app(run)
        listener = Listener(run.redis_url, Namespace(default_instance(run.db_url)).job_events, state_keys)
        listener.start()
        start_web(run)
        phase_idle(run, listener)
        phase_decisions(run)
        phase_drain(run, listener)
        results = report(run)
        print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        failed = False
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if listener is not None:
            listener.close()
        run.procs.stop_all()
        drop_storage(run)
        if failed or args.keep_logs:
            print(f"process logs kept in {logdir}", file=sys.stderr)
        else:
            for f in logdir.iterdir():
                f.unlink()
            logdir.rmdir()


if __name__ == "__main__":
    sys.exit(main())
