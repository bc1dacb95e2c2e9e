#!/usr/bin/env python3
"""Longrun vs raw Celery, the stack floor and Procrastinate: round trip, pickup, throughput and drain, in one run.

    .venv/bin/pip install -r bench/requirements.txt   # once: Procrastinate, a bench-only dependency
    .venv/bin/python bench/bench_jobs.py            # defaults: 200 sequential, 500 throughput, drains of 500
    .venv/bin/python bench/bench_jobs.py --help

It owns everything it touches: PostgreSQL databases ``longrun_bench`` and ``longrun_bench_procrastinate``
(``--db-name``; dropped and re-created, dropped again at the end unless ``--keep-db``), Redis DB 13 (flushed
before and after), one port in 5100-5199, and the gunicorn / celery / procrastinate processes it starts (each in
its own session, killed as a group on exit, failure or Ctrl-C). See bench/README.md.
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
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import psycopg2
import redis
import requests

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))

from benchlib import PG_HOST_URL, ProcSet, recreate_database  # noqa: E402
from jobs_common import (  # noqa: E402 - re-exported: bench_dispatch.py imports them from here
    Listener,
    base_env,
    celery_worker_cmd,
    cpu_delta,
    port_free,
    post_many,
    sample_backends,
    service_cpu_seconds,
    summary,
    venv_bin,
)
from longrun_drain import drain_longrun  # noqa: E402
from peer_phases import run_procrastinate  # noqa: E402
from peer_report import peer_report  # noqa: E402

from app.channels import Namespace  # noqa: E402
from app.config import default_instance  # noqa: E402 - after the path fix

DEFAULT_DB = "longrun_bench"
DEFAULT_REDIS_DB = 13
PORT_RANGE = range(5100, 5200)
ZERO_WORK_BODY = {"report": "demo", "params": {"duration_seconds": 0, "steps": 1}}



# --------------------------------------------------------------------------- phase 1: raw Celery
def run_raw(args: argparse.Namespace, procs: ProcSet, logdir: Path, redis_url: str) -> dict:
    os.environ["BENCH_REDIS_URL"] = redis_url
    sys.path.insert(0, str(BENCH_DIR))
    import raw_celery_app as raw

    env = base_env({"BENCH_REDIS_URL": redis_url})
    worker = procs.start(
        "raw-worker",
        celery_worker_cmd("raw_celery_app", "bench-raw", args.worker_concurrency, raw.RAW_QUEUE),
        env, BENCH_DIR)
    listener = Listener(redis_url, raw.RAW_DONE_CHANNEL, lambda d: [d["token"]])
    listener.start()
    out: dict = {}
    try:
        worker.wait_log(" ready.", 60)

        def one() -> tuple[float, str]:
            token = uuid.uuid4().hex
            t0 = time.perf_counter()
            raw.noop.apply_async(args=[token])
            got = listener.wait(token, args.job_timeout)
            if got is None:
                raise RuntimeError(f"raw task {token} never reported back:\n{worker.log_tail()}")
            return got[0] - t0, token

        for _ in range(args.warmup):
            one()
        out["rt"] = [one()[0] for _ in range(args.n)]

        # Throughput: publish as fast as one thread can, then wait for every notice.
        tokens = [uuid.uuid4().hex for _ in range(args.m)]
        cpu0, svc0 = worker.cpu_seconds(), service_cpu_seconds()
        t0 = time.perf_counter()
        for token in tokens:
            raw.noop.apply_async(args=[token])
        t_sent = time.perf_counter()
        missing, done, t_end = listener.completion(tokens, args.throughput_timeout)
        out["tp"] = {"m": args.m, "completed": done, "missing": len(missing), "elapsed": t_end - t0,
                     "publish_elapsed": t_sent - t0, "worker_cpu": worker.cpu_seconds() - cpu0,
                     "svc_cpu": cpu_delta(svc0, service_cpu_seconds())}
    finally:
        listener.close()
        procs.stop(worker)
    return out


# --------------------------------------------------------------------------- phase 2: the stack floor
def run_floor(args: argparse.Namespace, procs: ProcSet, redis_url: str, db_url: str) -> dict:
    """``floor_app.py``: HTTP POST + three commits + one queue hop + one notice, nothing else."""
    import floor_app as floor

    if not port_free(args.port):
        raise RuntimeError(f"port {args.port} is busy; pick another with --port (5100-5199)")
    conn = psycopg2.connect(db_url)
    with conn, conn.cursor() as cur:
        cur.execute(floor.CREATE_TABLE)
    conn.close()
    env = base_env({"BENCH_REDIS_URL": redis_url, "BENCH_DATABASE_URL": db_url})
    # The same gunicorn shape as Longrun's (gunicorn.conf.py with WEB_CONCURRENCY=1).
    web = procs.start("floor-web", [venv_bin("gunicorn"), "-k", "gthread", "-w", "1", "--threads", "1100",
                                    "--worker-connections", "1300", "--keep-alive", "15",
                                    "-b", f"127.0.0.1:{args.port}", "floor_app:web"],
                      env, BENCH_DIR, stop_signal=signal.SIGINT)
    worker = procs.start(
        "floor-worker",
        celery_worker_cmd("floor_app:celery_app", "bench-floor", args.worker_concurrency, floor.FLOOR_QUEUE),
        env, BENCH_DIR)
    listener = Listener(redis_url, floor.FLOOR_DONE_CHANNEL, lambda d: [d["id"]])
    listener.start()
    url = f"http://127.0.0.1:{args.port}/jobs"
    out: dict = {}
    try:
        worker.wait_log(" ready.", 60)
        web.wait_http(url, timeout=60)
        session = requests.Session()

        def one() -> tuple[float, float]:
            t0 = time.perf_counter()
            r = session.post(url, timeout=30)
            t_resp = time.perf_counter()
            if r.status_code != 202:
                raise RuntimeError(f"floor POST answered {r.status_code}: {r.text[:300]}")
            got = listener.wait(r.json()["id"], args.job_timeout)
            if got is None:
                raise RuntimeError(f"floor job never reported back:\n{worker.log_tail()}")
            return got[0] - t0, t_resp - t0

        for _ in range(args.warmup):
            one()
        seq = [one() for _ in range(args.n)]
        out["rt"], out["http"] = [a for a, _ in seq], [b for _, b in seq]

        cpu_w0, cpu_k0, svc0 = web.cpu_seconds(), worker.cpu_seconds(), service_cpu_seconds()
        t0 = time.perf_counter()
        ids, errors = post_many(url, {}, args.m, args.client_threads)
        missing, done, t_end = listener.completion(ids, args.throughput_timeout)
        out["tp"] = {"m": args.m, "completed": done, "missing": len(missing), "errors": errors,
                     "elapsed": t_end - t0, "cpu_web": web.cpu_seconds() - cpu_w0,
                     "cpu_worker": worker.cpu_seconds() - cpu_k0, "svc_cpu": cpu_delta(svc0, service_cpu_seconds())}
    finally:
        listener.close()
        procs.stop(worker)
        procs.stop(web)
    return out


# --------------------------------------------------------------------------- phase 3: Longrun
def state_keys(d: dict) -> list:
    if d.get("kind") == "state":
        return [(d["job_id"], d["state"])]
    return [(d["job_id"], "kind:" + d.get("kind", "?"))]


def run_longrun(args: argparse.Namespace, procs: ProcSet, logdir: Path, redis_url: str, db_url: str) -> dict:
    port = args.port
    if not port_free(port):
        raise RuntimeError(f"port {port} is busy; pick another with --port (5100-5199)")
    env = base_env({
        "LONGRUN_ENV": "testing",
        "SECRET_KEY": "x",
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "WEB_CONCURRENCY": str(args.web_concurrency),
        # The per-owner backpressure would throttle the benchmark client itself: measure the job path.
        "LONGRUN_MAX_WAITING_PER_OWNER": "0",
        "LONGRUN_MAX_JOBS_PER_MINUTE": "0",
    })
    mig = subprocess.run([venv_bin("flask"), "--app", "wsgi:app", "db", "upgrade"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    if mig.returncode != 0:
        raise RuntimeError(f"migration failed:\n{mig.stdout[-2000:]}\n{mig.stderr[-2000:]}")

    listener = Listener(redis_url, Namespace(default_instance(db_url)).job_events, state_keys)
    listener.start()
    web = procs.start("gunicorn", [venv_bin("gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], env, ROOT,
                      stop_signal=signal.SIGINT)  # SIGINT: gunicorn's quick shutdown
    worker = procs.start(
        "longrun-worker",
        celery_worker_cmd("celery_worker", "bench-longrun", args.worker_concurrency),
        env, ROOT)
    base = f"http://127.0.0.1:{port}"
    out: dict = {}
    try:
        worker.wait_log(" ready.", 60)
        web.wait_http(base + "/reports", timeout=60)

        session = requests.Session()

        def one() -> dict:
            t0w = time.time()
            t0 = time.perf_counter()
            r = session.post(base + "/reports/v2", json=ZERO_WORK_BODY, timeout=30)
            t_resp = time.perf_counter()
            if r.status_code != 202:
                raise RuntimeError(f"POST /reports/v2 answered {r.status_code}: {r.text[:500]}")
            jid = r.json()["id"]
            got = listener.wait((jid, "Succeeded"), args.job_timeout)
            if got is None:
                raise RuntimeError(f"job {jid} did not succeed in {args.job_timeout} s:\n{worker.log_tail()}")
            enq, proc = listener.get((jid, "Enqueued")), listener.get((jid, "Processing"))
            return {"id": jid, "t0": t0, "t0w": t0w, "resp": t_resp, "succ": got[0], "succw": got[1],
                    "enq": enq[0] if enq else None, "proc": proc[0] if proc else None}

        for _ in range(args.warmup):
            one()
        # Floor: an HTTP round trip to the same gunicorn that touches neither PostgreSQL nor Redis.
        floor = []
        for _ in range(args.n):
            t0 = time.perf_counter()
            session.get(base + "/reports", timeout=10).raise_for_status()
            floor.append(time.perf_counter() - t0)
        out["http_floor"] = floor
        cpu_w0, cpu_k0 = web.cpu_seconds(), worker.cpu_seconds()
        seq = [one() for _ in range(args.n)]
        out["seq"] = seq
        out["seq_cpu"] = {"web": web.cpu_seconds() - cpu_w0, "worker": worker.cpu_seconds() - cpu_k0}

        # Throughput: M POSTs from several client threads (each its own session/owner), then every Succeeded.
        cpu_w0, cpu_k0, svc0 = web.cpu_seconds(), worker.cpu_seconds(), service_cpu_seconds()
        t0 = time.perf_counter()
        ids, errors = post_many(base + "/reports/v2", ZERO_WORK_BODY, args.m, args.client_threads)
        t_sent = time.perf_counter()
        keys = [(jid, "Succeeded") for jid in ids]
        missing, done, t_end = listener.completion(keys, args.throughput_timeout)
        out["tp"] = {"m": args.m, "accepted": len(ids), "http_errors": errors, "succeeded_events": done,
                     "missing_events": len(missing), "elapsed": t_end - t0, "submit_elapsed": t_sent - t0,
                     "ids": ids, "cpu_web": web.cpu_seconds() - cpu_w0, "cpu_worker": worker.cpu_seconds() - cpu_k0,
                     "svc_cpu": cpu_delta(svc0, service_cpu_seconds())}
        # Workers idle again before they are stopped (so the DB read below sees final states).
        if missing:
            time.sleep(2)
        out["worker_log_errors"] = [ln for ln in worker.log_tail(200_000).splitlines()
                                    if " ERROR" in ln or "Traceback" in ln][:10]
        out["web_log_errors"] = [ln for ln in web.log_tail(200_000).splitlines()
                                 if " ERROR" in ln or "Traceback" in ln][:10]
        if args.drain:
            print(f"  Longrun drain of {args.drain} jobs", file=sys.stderr)
            queue_key = Namespace(default_instance(db_url)).queue_key(env.get("LONGRUN_QUEUE", "longrun"))
            out["drain"] = drain_longrun(args, procs, worker, env, listener, base + "/reports/v2", ZERO_WORK_BODY,
                                         queue_key)
    finally:
        listener.close()
        procs.stop(worker)
        procs.stop(web)
    out["commit_floor"] = commit_floor(db_url, args.n)
    out["db"] = read_db(db_url, [r["id"] for r in out.get("seq", [])], out.get("tp", {}).get("ids", []))
    return out


def commit_floor(db_url: str, n: int) -> list[float]:
    """Round trip of one tiny durable PostgreSQL transaction (INSERT + COMMIT) on the bench database."""
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS bench_commit_floor (id serial PRIMARY KEY, v int)")
        conn.commit()
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                cur.execute("INSERT INTO bench_commit_floor (v) VALUES (%s)", (i,))
            conn.commit()
            times.append(time.perf_counter() - t0)
        with conn.cursor() as cur:
            cur.execute("DROP TABLE bench_commit_floor")
        conn.commit()
        return times
    finally:
        conn.close()


def read_db(db_url: str, seq_ids: list[str], tp_ids: list[str]) -> dict:
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            rows = {}
            if seq_ids:
                cur.execute("SELECT id::text, created_at, started_at, finished_at, state, attempts "
                            "FROM jobs WHERE id::text = ANY(%s)", (seq_ids,))
                rows = {r[0]: r[1:] for r in cur.fetchall()}
            states: dict[str, int] = {}
            tp_times: list[tuple] = []
            if tp_ids:
                cur.execute("SELECT state, count(*) FROM jobs WHERE id::text = ANY(%s) GROUP BY state", (tp_ids,))
                states = dict(cur.fetchall())
                cur.execute("SELECT created_at, started_at, finished_at FROM jobs "
                            "WHERE id::text = ANY(%s) AND started_at IS NOT NULL", (tp_ids,))
                tp_times = cur.fetchall()
            cur.execute("SELECT state, count(*) FROM jobs GROUP BY state")
            all_states = dict(cur.fetchall())
            cur.execute("SELECT count(*) FROM jobs WHERE attempts > 1")
            multi_attempt = cur.fetchone()[0]
    finally:
        conn.close()
    return {"seq_rows": rows, "tp_states": states, "tp_times": tp_times, "all_states": all_states,
            "multi_attempt": multi_attempt}


# --------------------------------------------------------------------------- report
def fmt(v: float) -> str:
    return "n/a" if v != v else f"{v:8.2f}"


def print_table(title: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n{title}")
    print(f"  {'measure':<58} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} {'max ms':>9}")
    print("  " + "-" * 103)
    for name, s in rows:
        print(f"  {name:<58} {s['n']:>5} {fmt(s['p50']):>9} {fmt(s['p99']):>9} {fmt(s['mean']):>9} {fmt(s['max']):>9}")


def report(args: argparse.Namespace, raw: dict, floor: dict, lr: dict, peer: dict) -> dict:
    results: dict = {}
    print("\n" + "=" * 107)
    print(f"Longrun benchmark  —  {datetime.now().isoformat(timespec='seconds')}  "
          f"(cpus={os.cpu_count()}, worker -c {args.worker_concurrency}, WEB_CONCURRENCY={args.web_concurrency}, "
          f"n={args.n}, m={args.m}, client threads={args.client_threads})")
    print("=" * 107)
    l0, l1 = args.load_start, os.getloadavg()
    print(f"load average at start {l0[0]:.2f} / {l0[1]:.2f}, at end {l1[0]:.2f} / {l1[1]:.2f} (1 / 5 min)"
          + ("   WARNING: other work on this machine skews the figures" if l0[0] > 0.5 else ""))

    raw_rt = summary(raw.get("rt", []))
    floor_rt = summary(floor.get("rt", []))
    rows = [("raw Celery round trip (apply_async -> pub/sub notice)", raw_rt),
            ("stack floor e2e (POST sent -> notice; 3 commits)", floor_rt),
            ("  of which the floor's HTTP POST round trip", summary(floor.get("http", [])))]
    seq = lr.get("seq", [])
    e2e = summary([r["succ"] - r["t0"] for r in seq])
    rows.append(("Longrun e2e (POST sent -> Succeeded event)", e2e))
    print_table("1-2. Sequential latency (one at a time, zero-work job)", rows)

    dbrows = lr.get("db", {}).get("seq_rows", {})
    pick_db = [(row[1] - row[0]).total_seconds() for jid, row in dbrows.items() if row[1] and row[0]]
    pick_client = [r["proc"] - r["t0"] for r in seq if r["proc"] is not None]
    pickup_db = summary(pick_db)
    pickup_client = summary(pick_client)
    print_table("3. Pickup latency (Longrun sequential jobs)", [
        ("jobs.started_at - jobs.created_at (DB)", pickup_db),
        ("POST sent -> Processing event received (client)", pickup_client),
    ])

    # Where the e2e time goes: one timeline, client clocks and DB wall clock on the same host.
    bd = []
    bd.append(("HTTP POST round trip (sent -> 202 received)", summary([r["resp"] - r["t0"] for r in seq])))
    bd.append(("POST sent -> Enqueued event received", summary([r["enq"] - r["t0"] for r in seq if r["enq"]])))
    bd.append(("POST sent -> jobs.created_at (web, before the INSERT)",
               summary([dbrows[r["id"]][0].timestamp() - r["t0w"] for r in seq if r["id"] in dbrows])))
    bd.append(("202 received -> Processing event received",
               summary([r["proc"] - r["resp"] for r in seq if r["proc"]])))
    bd.append(("Processing event -> Succeeded event (client)",
               summary([r["succ"] - r["proc"] for r in seq if r["proc"]])))
    bd.append(("jobs.started_at -> jobs.finished_at (worker, DB)",
               summary([(row[2] - row[1]).total_seconds() for row in dbrows.values() if row[2] and row[1]])))
    bd.append(("jobs.finished_at -> Succeeded event (final commit+publish)",
               summary([r["succw"] - dbrows[r["id"]][2].timestamp() for r in seq
                        if r["id"] in dbrows and dbrows[r["id"]][2]])))
    print_table("   Breakdown of the Longrun e2e path (sequential jobs)", bd)
    print_table("   Reference floors (same machine)", [
        ("HTTP GET /reports on the same gunicorn (no DB, no Redis)", summary(lr.get("http_floor", []))),
        ("PostgreSQL tiny INSERT + COMMIT (durable, psycopg2)", summary(lr.get("commit_floor", []))),
    ])

    rtp, ltp = raw.get("tp", {}), lr.get("tp", {})
    raw_rate = rtp["completed"] / rtp["elapsed"] if rtp.get("elapsed") else float("nan")
    lr_rate = ltp["succeeded_events"] / ltp["elapsed"] if ltp.get("elapsed") else float("nan")
    db_states = lr.get("db", {}).get("tp_states", {})
    print("\n4. Throughput")
    if rtp:
        per_task = 1000.0 / max(1, rtp["m"])
        svc = rtp["svc_cpu"]
        print(f"  raw Celery: {rtp['completed']}/{rtp['m']} tasks in {rtp['elapsed']:.2f} s  ->  {raw_rate:8.1f} tasks/s"
              f"   (one thread publishing took {rtp['publish_elapsed']:.2f} s; missing notices: {rtp['missing']})")
        print(f"              CPU per task: worker {rtp['worker_cpu'] * per_task:.2f} ms, redis* {svc['redis'] * per_task:.2f} ms,"
              f" client {svc['client'] * per_task:.2f} ms")
    ftp = floor.get("tp", {})
    floor_rate = ftp["completed"] / ftp["elapsed"] if ftp.get("elapsed") else float("nan")
    if ftp:
        per_job = 1000.0 / max(1, ftp["m"])
        print(f"  floor:      {ftp['completed']}/{ftp['m']} jobs  in {ftp['elapsed']:.2f} s  ->  {floor_rate:8.1f} jobs/s"
              f"   (HTTP errors: {len(ftp['errors'])}; missing notices: {ftp['missing']})")
        print(f"              CPU per job: web {ftp['cpu_web'] * per_job:.2f} ms, worker {ftp['cpu_worker'] * per_job:.2f} ms")
    if ltp:
        print(f"  Longrun:    {ltp['succeeded_events']}/{ltp['m']} jobs  in {ltp['elapsed']:.2f} s  ->  {lr_rate:8.1f} jobs/s"
              f"   (submitting {ltp['accepted']} took {ltp['submit_elapsed']:.2f} s from {args.client_threads} threads)")
        print(f"              DB states of those jobs: {json.dumps(db_states)}; HTTP errors: {len(ltp['http_errors'])};"
              f" missing Succeeded events: {ltp['missing_events']}")
        per_job = 1000.0 / max(1, ltp["accepted"])
        svc = ltp["svc_cpu"]
        print(f"              CPU per job: web {ltp['cpu_web'] * per_job:.1f} ms, worker {ltp['cpu_worker'] * per_job:.1f} ms,"
              f" postgres {svc['postgres'] * per_job:.1f} ms, redis* {svc['redis'] * per_job:.1f} ms,"
              f" client {svc['client'] * per_job:.1f} ms   (postgres: our databases' backends; *redis: machine-wide)")
        tp_times = lr.get("db", {}).get("tp_times", [])
        if tp_times:
            s = summary([(t[1] - t[0]).total_seconds() for t in tp_times])
            print(f"              queue wait under load (started_at - created_at): p50 {s['p50']:.1f} ms,"
                  f" p99 {s['p99']:.1f} ms (backlog, not per-job pickup cost)")
        for err in ltp["http_errors"][:5]:
            print(f"              error: {err}")
    for label, key in (("worker", "worker_log_errors"), ("web", "web_log_errors")):
        for line in lr.get(key, [])[:5]:
            print(f"  {label} log: {line[:200]}")
    other = lr.get("db", {})
    if other:
        print(f"  all jobs in {args.db_name} by state: {json.dumps(other.get('all_states', {}))};"
              f" jobs with >1 attempt: {other.get('multi_attempt')}")

    def ratio(a: float, b: float) -> float:
        return a / b if b and b == b and a == a else float("nan")

    r50, r99 = ratio(e2e["p50"], raw_rt["p50"]), ratio(e2e["p99"], raw_rt["p99"])
    rtp_ratio = ratio(lr_rate, raw_rate)
    print("\n5. Ratios and targets")
    print(f"  Longrun e2e p50 / raw round-trip p50 : {r50:6.2f}x   ({e2e['p50']:.2f} ms / {raw_rt['p50']:.2f} ms)"
          f"   target < 2x: {'MET' if r50 < 2 else 'NOT MET'}")
    print(f"  Longrun e2e p99 / raw round-trip p99 : {r99:6.2f}x   ({e2e['p99']:.2f} ms / {raw_rt['p99']:.2f} ms)")
    print(f"  Longrun jobs/s / raw tasks/s         : {rtp_ratio:6.2f}x   ({lr_rate:.1f} / {raw_rate:.1f})")
    f50, f_lr50 = ratio(floor_rt["p50"], raw_rt["p50"]), ratio(e2e["p50"], floor_rt["p50"])
    f_lr99, f_tp = ratio(e2e["p99"], floor_rt["p99"]), ratio(lr_rate, floor_rate)
    print(f"  stack floor p50 / raw round-trip p50 : {f50:6.2f}x   ({floor_rt['p50']:.2f} ms / {raw_rt['p50']:.2f} ms)"
          "   (no implementation on this stack goes below the floor)")
    print(f"  Longrun e2e p50 / stack floor p50    : {f_lr50:6.2f}x   ({e2e['p50']:.2f} ms / {floor_rt['p50']:.2f} ms)")
    print(f"  Longrun e2e p99 / stack floor p99    : {f_lr99:6.2f}x   ({e2e['p99']:.2f} ms / {floor_rt['p99']:.2f} ms)")
    print(f"  Longrun jobs/s / stack floor jobs/s  : {f_tp:6.2f}x   ({lr_rate:.1f} / {floor_rate:.1f})")
    print(f"  pickup p50 (DB started_at - created_at): {pickup_db['p50']:.2f} ms"
          f"   target < 50 ms: {'MET' if pickup_db['p50'] < 50 else 'NOT MET'}")
    print(f"  pickup p50 (client POST -> Processing) : {pickup_client['p50']:.2f} ms")
    results["issue14"] = peer_report(raw, floor, lr, peer, pickup_db["p50"])
    print()
    results.update({
        "raw_rt": raw_rt, "longrun_e2e": e2e, "pickup_db": pickup_db, "pickup_client": pickup_client,
        "breakdown": dict(bd), "raw_tasks_per_s": raw_rate, "longrun_jobs_per_s": lr_rate,
        "ratio_p50": r50, "ratio_p99": r99, "ratio_throughput": rtp_ratio, "longrun_tp_states": db_states,
        "floor_e2e": floor_rt, "floor_jobs_per_s": floor_rate, "floor_over_raw_p50": f50,
        "longrun_over_floor_p50": f_lr50, "longrun_over_floor_p99": f_lr99, "longrun_over_floor_throughput": f_tp,
    })
    return results


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--n", type=int, default=200, help="sequential round trips / jobs (default 200)")
    p.add_argument("-m", "--m", type=int, default=500, help="tasks / jobs in the throughput runs (default 500)")
    p.add_argument("--warmup", type=int, default=20, help="untimed warm-up round trips per system (default 20)")
    p.add_argument("--client-threads", type=int, default=8, help="HTTP client threads for Longrun throughput")
    p.add_argument("--worker-concurrency", type=int, default=2, help="celery -c for both workers (default 2)")
    p.add_argument("--web-concurrency", type=int, default=1, help="gunicorn WEB_CONCURRENCY (default 1)")
    p.add_argument("--port", type=int, default=5150, help="gunicorn port, 5100-5199 (default 5150)")
    p.add_argument("--db-name", default=DEFAULT_DB, help="PostgreSQL database, dropped and re-created")
    p.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB, help="Redis DB number, flushed (default 13)")
    p.add_argument("--job-timeout", type=float, default=30.0, help="seconds to wait for one sequential job")
    p.add_argument("--throughput-timeout", type=float, default=90.0, help="seconds to wait for a throughput run")
    p.add_argument("--drain-timeout", type=float, default=180.0, help="seconds to wait for a drain to finish")
    p.add_argument("--skip-raw", action="store_true", help="skip the raw Celery baseline")
    p.add_argument("--skip-floor", action="store_true", help="skip the stack-floor baseline (floor_app.py)")
    p.add_argument("--skip-peer", action="store_true", help="skip the Procrastinate peer (bench/requirements.txt)")
    p.add_argument("--drain", type=int, default=500,
                   help="jobs in each drain test (workers stopped, jobs created, workers started); 0 skips it")
    p.add_argument("--peer-db-name", help="the peer's database, dropped and re-created (default: <db-name>_procrastinate)")
    p.add_argument("--keep-db", action="store_true", help="keep the databases (default: dropped at the end)")
    p.add_argument("--json", metavar="PATH", help="also write the headline figures as JSON")
    p.add_argument("--keep-logs", action="store_true", help="keep the process logs directory")
    args = p.parse_args(argv)
    if args.port not in PORT_RANGE:
        p.error("--port must be in 5100-5199")
    if args.redis_db in (0, 15):
        p.error("Redis DB 0 and 15 belong to others")
    args.peer_db_name = args.peer_db_name or f"{args.db_name}_procrastinate"
    for name in (args.db_name, args.peer_db_name):
        if name in {"postgres", "longrun_test", "template0", "template1"}:
            p.error(f"refusing to drop database {name}")
    if min(args.n, args.m, args.client_threads, args.worker_concurrency, args.web_concurrency) < 1:
        p.error("counts must be >= 1")
    return args


def run_phases(args: argparse.Namespace, procs: ProcSet, logdir: Path, redis_url: str, db_url: str) -> dict:
    """Every system in turn on fresh databases, then the report; returns the figures for ``--json``."""
    dbs = args.db_name if args.skip_peer else f"{args.db_name} and {args.peer_db_name}"
    print(f"setup: databases {dbs} (re-created), Redis DB {args.redis_db} (flushed), logs in {logdir}")
    redis.Redis.from_url(redis_url).flushdb()
    recreate_database(args.db_name)
    # PostgreSQL CPU per job counts the backends of our two databases only (others run tests on this server).
    sampler = sample_backends(f"{PG_HOST_URL}/postgres", [args.db_name, args.peer_db_name])
    try:
        return _run_systems(args, procs, logdir, redis_url, db_url)
    finally:
        sampler.close()


def _run_systems(args: argparse.Namespace, procs: ProcSet, logdir: Path, redis_url: str, db_url: str) -> dict:
    """raw Celery, the floor, Procrastinate, Longrun, then the report (each phase's wall time on stderr)."""
    raw: dict = {}
    if not args.skip_raw:
        print(f"phase 1: raw Celery baseline ({args.warmup} warm-up, {args.n} sequential, {args.m} throughput)")
        raw = _timed(run_raw, args, procs, logdir, redis_url)
    floor: dict = {}
    if not args.skip_floor:
        print(f"phase 2: stack floor ({args.warmup} warm-up, {args.n} sequential, {args.m} throughput)")
        floor = _timed(run_floor, args, procs, redis_url, db_url)
    peer: dict = {}
    if not args.skip_peer:
        print(f"phase 3: Procrastinate ({args.warmup} warm-up, {args.n} sequential, {args.m} throughput, raw and behind"
              f" Flask; drain of {args.drain})")
        recreate_database(args.peer_db_name)
        peer = _timed(run_procrastinate, args, procs, redis_url, f"{PG_HOST_URL}/{args.peer_db_name}")
    print(f"phase 4: Longrun ({args.warmup} warm-up, {args.n} sequential, {args.m} throughput; drain of {args.drain})")
    lr = _timed(run_longrun, args, procs, logdir, redis_url, db_url)
    return report(args, raw, floor, lr, peer)


def _timed(phase: Callable[..., dict], *args: object) -> dict:
    """Run one phase and say how long it took (the default run should stay within a few minutes)."""
    t0 = time.perf_counter()
    out = phase(*args)
    print(f"  ({phase.__name__}: {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return out


def clean_up(args: argparse.Namespace, redis_url: str) -> None:
    """Drop what the run created (unless ``--keep-db``) and empty its Redis DB."""
    try:
        redis.Redis.from_url(redis_url).flushdb()
    except redis.RedisError as exc:
        print(f"warning: could not flush {redis_url}: {exc}", file=sys.stderr)
    if args.keep_db:
        return
    conn = psycopg2.connect(f"{PG_HOST_URL}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in (args.db_name, args.peer_db_name):
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    db_url = f"{PG_HOST_URL}/{args.db_name}"
    logdir = Path(tempfile.mkdtemp(prefix="longrun-bench-"))
    procs = ProcSet(logdir, ROOT, stop_timeout=15.0)
    failed = True

    def on_term(signum, _frame) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    started = time.perf_counter()
    args.load_start = os.getloadavg()
    if args.load_start[0] > 0.5:
        print(f"warning: 1-min load average is {args.load_start[0]:.2f} before starting; figures will be noisy",
              file=sys.stderr)
    try:
        results = run_phases(args, procs, logdir, redis_url, db_url)
        print(f"total wall time {time.perf_counter() - started:.1f} s")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        failed = False
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        clean_up(args, redis_url)
        if failed or args.keep_logs:
            print(f"process logs kept in {logdir}", file=sys.stderr)
        else:
            for f in logdir.iterdir():
                f.unlink()
            logdir.rmdir()


if __name__ == "__main__":
    sys.exit(main())
