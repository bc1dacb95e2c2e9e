"""``bench_jobs.py``'s Procrastinate phases: raw (defer from Python), behind Flask on gunicorn, and draining a backlog.

Everything runs against its own database (dropped and re-created by the caller) and the bench's Redis DB; the
worker is ``procrastinate worker`` with as many slots as Longrun's Celery worker has processes.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import psycopg2
import requests
from benchlib import Proc, ProcSet
from jobs_common import Listener, base_env, cpu_delta, port_free, post_many, service_cpu_seconds, venv_bin

BENCH_DIR = Path(__file__).resolve().parent
DEFER_CHUNK = 200


def load_peer(redis_url: str, dsn: str) -> ModuleType:
    """Import ``procrastinate_peer`` configured for this run (it reads its settings at import time)."""
    os.environ["BENCH_REDIS_URL"] = redis_url
    os.environ["BENCH_PROCRASTINATE_DSN"] = dsn
    try:
        import procrastinate_peer
    except ImportError as exc:
        raise SystemExit(f"Procrastinate is a bench-only dependency: .venv/bin/pip install -r bench/requirements.txt "
                         f"(or pass --skip-peer): {exc}") from exc
    return procrastinate_peer


def peer_env(redis_url: str, dsn: str) -> dict[str, str]:
    """The environment of the peer's worker and gunicorn (``procrastinate_peer`` importable from bench/)."""
    return base_env({"BENCH_REDIS_URL": redis_url, "BENCH_PROCRASTINATE_DSN": dsn, "PYTHONPATH": str(BENCH_DIR)})


def start_worker(procs: ProcSet, env: dict[str, str], args: argparse.Namespace, name: str) -> Proc:
    """``procrastinate worker`` on the peer's queue with ``--worker-concurrency`` slots (one process)."""
    import procrastinate_peer as peer

    cmd = [venv_bin("procrastinate"), "--app=procrastinate_peer.app", "--log-level", "info", "worker",
           "--concurrency", str(args.worker_concurrency), "--queues", peer.QUEUE]
    # SIGTERM is Procrastinate's graceful stop: running jobs finish, the worker unregisters.
    return procs.start(name, cmd, env, BENCH_DIR, stop_signal=signal.SIGTERM)


def _timed_one(peer: ModuleType, listener: Listener, timeout: float, worker: Proc) -> float:
    """One defer → notice round trip, in seconds."""
    token = uuid.uuid4().hex
    t0 = time.perf_counter()
    peer.noop.defer(token=token)
    got = listener.wait(token, timeout)
    if got is None:
        raise RuntimeError(f"Procrastinate job {token} never reported back:\n{worker.log_tail()}")
    return got[0] - t0


def _defer_many(peer: ModuleType, tokens: list[str], threads: int) -> None:
    """Defer one job per token from ``threads`` threads, one defer (one transaction) per job."""
    shares = [tokens[i::threads] for i in range(threads)]

    def defer_share(share: list[str]) -> None:
        for token in share:
            peer.noop.defer(token=token)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(defer_share, shares))


def raw_phase(args: argparse.Namespace, peer: ModuleType, worker: Proc, listener: Listener) -> dict:
    """Sequential defer → notice, then ``m`` jobs deferred from the client threads until the last notice."""
    for _ in range(args.warmup):
        _timed_one(peer, listener, args.job_timeout, worker)
    out: dict = {"rt": [_timed_one(peer, listener, args.job_timeout, worker) for _ in range(args.n)]}
    tokens = [uuid.uuid4().hex for _ in range(args.m)]
    cpu_k0, svc0 = worker.cpu_seconds(), service_cpu_seconds()
    t0 = time.perf_counter()
    _defer_many(peer, tokens, args.client_threads)
    t_sent = time.perf_counter()
    missing, done, t_end = listener.completion(tokens, args.throughput_timeout)
    out["tp"] = {"m": args.m, "completed": done, "missing": len(missing), "elapsed": t_end - t0,
                 "submit_elapsed": t_sent - t0, "cpu_worker": worker.cpu_seconds() - cpu_k0,
                 "svc_cpu": cpu_delta(svc0, service_cpu_seconds())}
    return out


def web_phase(args: argparse.Namespace, procs: ProcSet, env: dict[str, str], worker: Proc, listener: Listener) -> dict:
    """The peer behind ``POST /jobs`` on gunicorn (the floor's shape): sequential e2e, then throughput."""
    if not port_free(args.port):
        raise RuntimeError(f"port {args.port} is busy; pick another with --port (5100-5199)")
    web = procs.start("procrastinate-web", [venv_bin("gunicorn"), "-k", "gthread", "-w", "1", "--threads", "1100",
                                            "--worker-connections", "1300", "--keep-alive", "15",
                                            "-b", f"127.0.0.1:{args.port}", "procrastinate_peer:web"],
                      env, BENCH_DIR, stop_signal=signal.SIGINT)
    url = f"http://127.0.0.1:{args.port}/jobs"
    try:
        web.wait_http(f"http://127.0.0.1:{args.port}/healthz", timeout=60)
        return _web_measure(args, web, worker, listener, url)
    finally:
        procs.stop(web)


def _web_measure(args: argparse.Namespace, web: Proc, worker: Proc, listener: Listener, url: str) -> dict:
    session = requests.Session()

    def one() -> tuple[float, float]:
        t0 = time.perf_counter()
        r = session.post(url, timeout=30)
        t_resp = time.perf_counter()
        if r.status_code != 202:
            raise RuntimeError(f"Procrastinate POST answered {r.status_code}: {r.text[:300]}")
        got = listener.wait(r.json()["id"], args.job_timeout)
        if got is None:
            raise RuntimeError(f"Procrastinate web job never reported back:\n{worker.log_tail()}")
        return got[0] - t0, t_resp - t0

    for _ in range(args.warmup):
        one()
    seq = [one() for _ in range(args.n)]
    out: dict = {"rt": [a for a, _ in seq], "http": [b for _, b in seq]}
    cpu_w0, cpu_k0, svc0 = web.cpu_seconds(), worker.cpu_seconds(), service_cpu_seconds()
    t0 = time.perf_counter()
    ids, errors = post_many(url, {}, args.m, args.client_threads)
    missing, done, t_end = listener.completion(ids, args.throughput_timeout)
    out["tp"] = {"m": args.m, "completed": done, "missing": len(missing), "errors": errors, "elapsed": t_end - t0,
                 "cpu_web": web.cpu_seconds() - cpu_w0, "cpu_worker": worker.cpu_seconds() - cpu_k0,
                 "svc_cpu": cpu_delta(svc0, service_cpu_seconds())}
    return out


def todo_count(dsn: str, queue: str) -> int:
    """Jobs of ``queue`` still waiting (status ``todo``) in the peer's table."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM procrastinate_jobs WHERE queue_name = %s AND status = 'todo'", (queue,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def drain_phase(args: argparse.Namespace, procs: ProcSet, env: dict[str, str], listener: Listener, dsn: str) -> dict:
    """``--drain`` jobs deferred with no worker running, then one started: start → last job done."""
    import procrastinate_peer as peer

    tokens = [uuid.uuid4().hex for _ in range(args.drain)]
    # Creation speed is not measured here: batches keep the set-up short.
    for i in range(0, len(tokens), DEFER_CHUNK):
        peer.noop.batch_defer(*({"token": t} for t in tokens[i:i + DEFER_CHUNK]))
    waiting = todo_count(dsn, peer.QUEUE)
    if waiting != len(tokens):
        raise RuntimeError(f"{waiting} Procrastinate jobs waiting before the drain, expected {len(tokens)}")
    return drain_timed(args, lambda: start_worker(procs, env, args, "procrastinate-drain-worker"), listener, tokens,
                       procs)


def drain_timed(args: argparse.Namespace, start: Callable[[], Proc], listener: Listener, keys: list,
                procs: ProcSet) -> dict:
    """Start the workers, wait for every key: start → first done, start → last done, and CPU after the first."""
    svc0 = service_cpu_seconds()
    t_start = time.perf_counter()
    worker = start()
    try:
        first = _wait_first(listener, keys, worker, args.drain_timeout)
        cpu_k1, svc1 = worker.cpu_seconds(), service_cpu_seconds()
        missing, done, t_last = listener.completion(keys, args.drain_timeout)
        cpu_k2, svc2 = worker.cpu_seconds(), service_cpu_seconds()
        errors = [ln for ln in worker.log_tail(200_000).splitlines() if " ERROR" in ln or "Traceback" in ln][:10]
    finally:
        procs.stop(worker)
    return {"jobs": len(keys), "completed": done, "missing": len(missing), "to_first": first - t_start,
            "elapsed": t_last - t_start, "steady": t_last - first,
            # Per job after the first one: the boot's CPU is not a per-job cost.
            "cpu_worker": cpu_k2 - cpu_k1, "svc_cpu": cpu_delta(svc1, svc2), "boot_svc_cpu": cpu_delta(svc0, svc1),
            "log_errors": errors}


def _wait_first(listener: Listener, keys: list, worker: Proc, timeout: float) -> float:
    """perf_counter of the first key's arrival (the workers are up and running jobs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first = listener.first_arrival(keys)
        if first is not None:
            return first
        if not worker.alive():
            raise RuntimeError(f"{worker.name} exited during the drain:\n{worker.log_tail()}")
        time.sleep(0.005)
    raise RuntimeError(f"no job done {timeout:.0f} s after starting {worker.name}:\n{worker.log_tail()}")


def run_procrastinate(args: argparse.Namespace, procs: ProcSet, redis_url: str, dsn: str) -> dict:
    """Every Procrastinate figure: schema, raw, behind Flask, then the drain."""
    peer = load_peer(redis_url, dsn)
    env = peer_env(redis_url, dsn)
    peer.app.open()
    listener = Listener(redis_url, peer.DONE_CHANNEL, lambda d: [d["token"]])
    listener.start()
    out: dict = {}
    try:
        peer.app.schema_manager.apply_schema()
        worker = start_worker(procs, env, args, "procrastinate-worker")
        try:
            worker.wait_log("Starting worker on", 60)
            print("  Procrastinate raw (defer from Python)", file=sys.stderr)
            out["raw"] = raw_phase(args, peer, worker, listener)
            print("  Procrastinate behind Flask on gunicorn", file=sys.stderr)
            out["web"] = web_phase(args, procs, env, worker, listener)
        finally:
            procs.stop(worker)
        if args.drain:
            print(f"  Procrastinate drain of {args.drain} jobs", file=sys.stderr)
            out["drain"] = drain_phase(args, procs, env, listener, dsn)
    finally:
        listener.close()
        peer.app.close()
    return out
