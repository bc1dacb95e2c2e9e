#!/usr/bin/env python3
"""Longrun's /notifications under N concurrent sockets vs a raw Redis -> WebSocket fan-out, in one run.

    .venv/bin/python bench/bench_notifications.py                       # N = 100, 500, 1000; ~5 min
    .venv/bin/python bench/bench_notifications.py -n 50,100 --configs 1x200 --window 5 --skip-raw
    .venv/bin/python bench/bench_notifications.py --help

It owns everything it touches: PostgreSQL database ``longrun_bench_ws`` (dropped and re-created), Redis
DB 12 (flushed), ports in 5200-5299, and the gunicorn / celery processes it starts (each in its own
session, killed as a group on exit, failure or Ctrl-C). See bench/README.md for what the figures mean.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg2
import redis
import requests

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import ws_clients  # noqa: E402 - after the path fix
from benchlib import (  # noqa: E402
    PG_HOST_URL,
    Proc,
    ProcSet,
    fmt,
    free_port,
    loadavg,
    percentile,
    raise_nofile,
    setup_database_and_redis,
    testing_env,
    worker_shapes,
)
from raw_ws_app import RAW_CHANNEL  # noqa: E402

DB_NAME = "longrun_bench_ws"
REDIS_DB = 12
PORTS = range(5200, 5300)


@dataclass(frozen=True)
class WebConfig:
    """A gunicorn flag set to try: workers x threads, worker-connections."""

    workers: int
    threads: int
    connections: int

    @classmethod
    def parse(cls, spec: str) -> "WebConfig":
        """'2x600' or '2x600:1000' (workers x threads[:worker-connections], default 2000)."""
        size, _, conns = spec.partition(":")
        workers, _, threads = size.partition("x")
        return cls(int(workers), int(threads), int(conns or 2000))

    @property
    def label(self) -> str:
        return f"w{self.workers} t{self.threads} c{self.connections}"

    def flags(self) -> list[str]:
        return ["--workers", str(self.workers), "--threads", str(self.threads),
                "--worker-connections", str(self.connections)]


def gunicorn_cmd(port: int, config: WebConfig, app: str) -> list[str]:
    """gunicorn with the project's gunicorn.conf.py, overridden by the flags under test."""
    return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
            *config.flags(), app]


# --------------------------------------------------------------------------- environment
def jobs_final_seq(job_ids: list[str]) -> dict[str, tuple[int, str]]:
    """last_seq and state of each job, from PostgreSQL."""
    conn = psycopg2.connect(f"{PG_HOST_URL}/{DB_NAME}")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id::text, last_seq, state FROM jobs WHERE id::text = ANY(%s)", (job_ids,))
            return {row[0]: (row[1], row[2]) for row in cur.fetchall()}
    finally:
        conn.close()


def request_cancel_in_db(job_id: str) -> None:
    """The worker's cancel watcher polls ``jobs.cancel_requested``: the fallback when the web cannot answer."""
    conn = psycopg2.connect(f"{PG_HOST_URL}/{DB_NAME}")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE jobs SET cancel_requested = true WHERE id::text = %s", (job_id,))
    finally:
        conn.close()


# --------------------------------------------------------------------------- page prober
class PageProber(threading.Thread):
    """Sequential GETs, a fresh TCP connection each (new users land on any worker), until stopped."""

    def __init__(self, port: int, path: str, cookie: str, gap: float, timeout: float = 10.0) -> None:
        super().__init__(name="page-prober", daemon=True)
        self.port, self.path, self.cookie, self.gap, self.timeout = port, path, cookie, gap, timeout
        self.stop_event = threading.Event()
        self.latencies: list[float] = []  # seconds; a timeout counts as `timeout`
        self.failures: list[str] = []

    def one(self) -> None:
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            conn.request("GET", self.path, headers={"Cookie": self.cookie, "Connection": "close"})
            response = conn.getresponse()
            response.read()
            conn.close()
            self.latencies.append(time.perf_counter() - t0)
            if response.status != 200:
                self.failures.append(f"HTTP {response.status}")
        except (OSError, http.client.HTTPException) as exc:
            self.latencies.append(max(time.perf_counter() - t0, self.timeout))
            self.failures.append(type(exc).__name__)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.one()
            self.stop_event.wait(self.gap)

    def stop(self) -> "PageProber":
        self.stop_event.set()
        self.join(self.timeout + 5)
        return self

    def summary(self) -> dict[str, Any]:
        ms = [x * 1000 for x in self.latencies]
        return {"n": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms, default=None),
                "failures": len(self.failures), "failure_kinds": sorted(set(self.failures))}


def probe_pages_for(seconds: float, *args: Any) -> dict[str, Any]:
    """Run a prober for ``seconds`` and summarise."""
    prober = PageProber(*args)
    prober.start()
    time.sleep(seconds)
    return prober.stop().summary()


# --------------------------------------------------------------------------- socket fleet
class Fleet(ws_clients.ClientProcess):
    """The client process holding N sockets (bench/ws_clients.py)."""

    def __init__(self, specs: list[dict[str, Any]], opts: dict[str, Any]) -> None:
        super().__init__(ws_clients.run, (specs, opts), "ws-clients")

    def _reply(self, timeout: float) -> dict[str, Any]:
        if not self.pipe.poll(timeout):
            raise RuntimeError(f"socket client process did not answer within {timeout:.0f} s")
        return self.pipe.recv()

    def connected(self, timeout: float) -> dict[str, Any]:
        return self._reply(timeout)

    def wait_final(self, timeout: float) -> dict[str, Any]:
        self.pipe.send(("wait_final", timeout))
        return self._reply(timeout + 30)

    def close(self) -> list[dict[str, Any]]:
        self.pipe.send(("close",))
        sockets = self._reply(120)["sockets"]
        self.proc.join(20)
        return sockets



# --------------------------------------------------------------------------- analysis
_ts_cache: dict[str, float] = {}


def ts_epoch(ts: str) -> float:
    """ISO time (as the worker wrote it) -> epoch seconds; many sockets share each value."""
    value = _ts_cache.get(ts)
    if value is None:
        value = datetime.fromisoformat(ts).timestamp()
        _ts_cache[ts] = value
    return value


def analyse(sockets: list[dict[str, Any]], final_seq: dict[str, int], t_all: float,
            snapshot: bool) -> dict[str, Any]:
    """Loss (gaps from the first expected seq to the job's final one), latency of events published after
    every socket was ready, replays, duplicates, out-of-order deliveries."""
    out = {"ready": 0, "failed": 0, "lost": 0, "lost_sockets": 0, "no_final": 0, "replayed": 0, "dupes": 0,
           "out_of_order": 0, "closed_early": 0, "events": 0, "errors": set()}
    latencies: list[float] = []
    for s in sockets:
        if not s["ready_at"] or s["ready_at"] > t_all:  # late sockets missed the connect budget
            out["failed"] += 1
            out["errors"].add(s["error"] or s["closed_early"] or "not ready within the connect budget")
            continue
        out["ready"] += 1
        if s["closed_early"]:
            out["closed_early"] += 1
            out["errors"].add(s["closed_early"])
        start = (s["snapshot_seq"] or 0) if snapshot else 0
        last = final_seq[s["job"]]
        live = [e for e in s["events"] if e[0] > start]
        seqs = [e[0] for e in live]
        missing = len(set(range(start + 1, last + 1)) - set(seqs))
        out["lost"] += missing
        out["lost_sockets"] += 1 if missing else 0
        ended = (seqs and seqs[-1] == last) or (not seqs and start == last)  # or the snapshot was final
        out["no_final"] += 0 if (ended and s["final_at"]) else 1
        out["dupes"] += len(seqs) - len(set(seqs))
        out["out_of_order"] += sum(1 for a, b in pairwise(seqs) if b < a)
        out["replayed"] += sum(1 for e in live if e[3])
        out["events"] += len(live)
        for _seq, ts, received, *_ in live:
            sent = ts_epoch(ts)
            if sent >= t_all:
                latencies.append((received - sent) * 1000)
    out["errors"] = sorted(out["errors"])[:5]
    out["latency"] = {"n": len(latencies), "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                      "max": max(latencies, default=float("nan")),
                      "mean": statistics.fmean(latencies) if latencies else float("nan")}
    return out


# --------------------------------------------------------------------------- one round
@dataclass
class Round:
    """Everything measured for one system/config/N."""

    system: str
    config: str
    n: int
    connect_s: float = float("nan")
    window_s: float = float("nan")
    msgs_per_s: float = float("nan")
    web_cpu_pct: float = float("nan")
    idle_cpu_pct: float = float("nan")
    client_cpu_pct: float = float("nan")
    shape: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    pages_base: dict[str, Any] = field(default_factory=dict)
    pages_load: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def client_opts(args: argparse.Namespace) -> dict[str, Any]:
    return {"connect_concurrency": args.connect_concurrency, "connect_timeout": args.connect_timeout,
            "connect_budget": args.connect_budget, "compression": not args.no_compression}


def measure(args: argparse.Namespace, web: Proc, port: int, rnd: Round, specs: list[dict[str, Any]],
            on_ready, on_window_end, probe_args: tuple | None = None) -> tuple[list[dict[str, Any]], float]:
    """Connect the sockets; once all are ready (or the budget is spent) start the events, hold the window
    (pages probed alongside), end the events, wait for every final event, then measure idle CPU."""
    fleet = Fleet(specs, client_opts(args))
    prober = None
    try:
        connected = fleet.connected(args.connect_budget + 60)
        t_all = connected["t_all"]
        rnd.connect_s = t_all - connected["t_start"]
        if connected["failed"]:
            rnd.notes.append(f"{connected['failed']} sockets not ready within {args.connect_budget:g} s: "
                             f"{connected['errors']}")
        on_ready()
        cpu0, client0, t0 = web.cpu_seconds(), fleet.cpu_seconds(), time.time()
        if probe_args is not None:
            prober = PageProber(*probe_args)
            prober.start()
        time.sleep(args.window)
        if prober is not None:
            rnd.pages_load = prober.stop().summary()
            prober = None
        on_window_end()
        reply = fleet.wait_final(args.final_timeout)
        rnd.window_s = time.time() - t0
        rnd.web_cpu_pct = (web.cpu_seconds() - cpu0) / rnd.window_s * 100
        rnd.client_cpu_pct = (fleet.cpu_seconds() - client0) / rnd.window_s * 100
        if reply["final"] < connected["ready"]:
            rnd.notes.append(f"only {reply['final']} of {connected['ready']} ready sockets saw a final event "
                             f"within {args.final_timeout:g} s")
        rnd.shape = worker_shapes(web, port)
        c0, w0 = web.cpu_seconds(), time.monotonic()
        time.sleep(args.idle_seconds)
        rnd.idle_cpu_pct = (web.cpu_seconds() - c0) / (time.monotonic() - w0) * 100
        sockets = fleet.close()
    finally:
        if prober is not None:
            prober.stop()
        fleet.kill()
    return sockets, t_all


def longrun_round(args: argparse.Namespace, web: Proc, port: int, config: WebConfig, n: int,
                  measure_baseline: bool, system: str = "Longrun") -> Round:
    """Running jobs first, then N sockets on them (snapshot + live events), pages probed alongside;
    the jobs are cancelled after the window, so each socket must end with its job's Cancelled event."""
    rnd = Round(system, config.label, n)
    base = f"http://127.0.0.1:{port}"
    owners = []
    for _ in range(args.jobs):
        session = requests.Session()
        session.get(base + "/jobs", timeout=10).raise_for_status()
        owners.append(session)
    steps = max(1, min(1000, round(args.duration / args.interval)))
    body = {"report": "demo", "params": {"duration_seconds": args.duration, "steps": steps}}
    jobs = []
    for session in owners:
        r = session.post(base + "/reports/v2", json=body, timeout=10)
        r.raise_for_status()
        jobs.append(r.json()["id"])
    deadline = time.monotonic() + 60
    while True:
        states = [owners[i].get(f"{base}/jobs/{j}", timeout=10).json()["state"] for i, j in enumerate(jobs)]
        if all(s == "Processing" for s in states):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs not Processing after 60 s: {states}")
        time.sleep(0.1)
    cookies = ["; ".join(f"{k}={v}" for k, v in s.cookies.items()) for s in owners]
    probe_args = (port, f"/jobs/{jobs[0]}", cookies[0], args.page_gap)
    if measure_baseline:
        rnd.pages_base = probe_pages_for(args.baseline_seconds, *probe_args)
    specs = [{"url": f"ws://127.0.0.1:{port}/notifications?job={jobs[i % args.jobs]}&format=json",
              "headers": {"Cookie": cookies[i % args.jobs]}, "job": jobs[i % args.jobs]} for i in range(n)]

    def cancel_jobs() -> None:
        """DELETE each job (new connection, 10 s timeout); if the server cannot answer, flag the row in
        PostgreSQL instead, which the worker polls, so the job still ends and the sockets get its final event."""
        for cookie, job in zip(cookies, jobs, strict=True):
            try:
                r = requests.delete(f"{base}/jobs/{job}", headers={"Cookie": cookie, "Connection": "close"},
                                    timeout=10)
                if r.status_code < 400:
                    continue
                rnd.notes.append(f"DELETE /jobs/{job[:8]}…: HTTP {r.status_code}; cancelled in PostgreSQL instead")
            except requests.RequestException as exc:
                rnd.notes.append(f"DELETE /jobs/{job[:8]}…: {type(exc).__name__}; cancelled in PostgreSQL instead")
            request_cancel_in_db(job)

    sockets, t_all = measure(args, web, port, rnd, specs, lambda: None, cancel_jobs, probe_args)
    db = jobs_final_seq(jobs)
    bad = {j: st for j, (_, st) in db.items() if st not in ws_clients.FINAL_STATES}
    if bad:
        rnd.notes.append(f"jobs not final: {bad}")
    rnd.result = analyse(sockets, {j: seq for j, (seq, _) in db.items()}, t_all, snapshot=True)
    rnd.msgs_per_s = rnd.result["latency"]["n"] / rnd.window_s
    return rnd


def raw_event(job: str, seq: int, kind: str, state: str) -> str:
    """A payload shaped and sized like a Longrun wire event, stamped just before publish."""
    now = datetime.now(timezone.utc).isoformat()
    return json.dumps({
        "job_id": job, "report": "demo", "seq": seq, "kind": kind, "state": state,
        "progress": round(seq / 6, 2), "message": f"Step {seq} of 600", "attempt": 1, "ts": now,
        "done": seq, "total": 600, "progress_message": f"Step {seq} of 600", "max_attempts": 3,
        "cancel_requested": False, "error": None, "has_result": False, "created_at": now,
        "started_at": now, "finished_at": now if state in ws_clients.FINAL_STATES else None, "v": 1, "type": "event",
        "replay": False,
    })


class RawPublisher(threading.Thread):
    """Each job: an event every ``interval`` (jobs staggered) until stopped, then one final event."""

    def __init__(self, redis_url: str, jobs: list[str], interval: float) -> None:
        super().__init__(name="raw-publisher", daemon=True)
        self.client = redis.Redis.from_url(redis_url)
        self.jobs, self.interval = jobs, interval
        self.stop_event = threading.Event()
        self.last_seq = {job: 0 for job in jobs}

    def _publish(self, job: str, kind: str, state: str) -> None:
        self.last_seq[job] += 1
        self.client.publish(RAW_CHANNEL, raw_event(job, self.last_seq[job], kind, state))

    def run(self) -> None:
        t0 = time.monotonic()
        k = 0
        while not self.stop_event.is_set():
            for j, job in enumerate(self.jobs):
                delay = t0 + k * self.interval + j * self.interval / len(self.jobs) - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):
                    break
                self._publish(job, "state" if k == 0 else "progress", "Processing")
            k += 1
        for job in self.jobs:
            self._publish(job, "state", "Cancelled")

    def finish(self) -> None:
        self.stop_event.set()
        self.join(10)


def raw_round(args: argparse.Namespace, web: Proc, port: int, config: WebConfig, n: int,
              redis_url: str) -> Round:
    """N sockets on the raw server, then the same event pattern published straight to Redis."""
    rnd = Round("raw", config.label, n)
    jobs = [f"raw-{uuid.uuid4().hex[:8]}" for _ in range(args.jobs)]
    specs = [{"url": f"ws://127.0.0.1:{port}/ws?job={jobs[i % args.jobs]}", "headers": {},
              "job": jobs[i % args.jobs]} for i in range(n)]
    publisher = RawPublisher(redis_url, jobs, args.interval)
    try:
        sockets, t_all = measure(args, web, port, rnd, specs, publisher.start, publisher.finish)
    finally:
        publisher.stop_event.set()
    rnd.result = analyse(sockets, dict(publisher.last_seq), t_all, snapshot=False)
    rnd.msgs_per_s = rnd.result["latency"]["n"] / rnd.window_s
    return rnd


# --------------------------------------------------------------------------- report
def shape_text(ws: list[dict[str, Any]]) -> str:
    if not ws:
        return "—"
    socks = "+".join(str(w["sockets"]) for w in ws)
    threads = "+".join(str(w["threads"]) for w in ws)
    rss = sum(w["rss_mb"] for w in ws)
    return f"{socks} / {threads} / {rss:.0f}"


def print_report(rounds: list[Round], header: list[str]) -> str:
    """Markdown tables (also returned, for --out)."""
    lines = [*header, ""]
    raw = {r.n: r for r in rounds if r.system == "raw"}
    lines += ["### Delivery: worker/Redis publish -> client receipt (events published after all N sockets were ready)",
              "",
              "| system | gunicorn | N | ready/failed | connect s | events | msgs/s | lost | replayed | no final "
              "| p50 ms | p99 ms | max ms | p50 ÷ raw | p99 ÷ raw | web CPU % | idle CPU % | client CPU % "
              "| sockets / threads / RSS MB per worker |",
              "|" + "---|" * 19]
    for r in rounds:
        res, lat = r.result, r.result.get("latency", {})
        base = raw.get(r.n)
        blat = base.result["latency"] if base and r.system != "raw" else None
        ratio50 = lat.get("p50", float("nan")) / blat["p50"] if blat else None
        ratio99 = lat.get("p99", float("nan")) / blat["p99"] if blat else None
        lines.append(
            f"| {r.system} | {r.config} | {r.n} | {res.get('ready', 0)}/{res.get('failed', 0)} | {fmt(r.connect_s)} "
            f"| {res.get('events', 0)} | {fmt(r.msgs_per_s, 0)} | {res.get('lost', '—')} | {res.get('replayed', '—')} "
            f"| {res.get('no_final', '—')} | {fmt(lat.get('p50'))} | {fmt(lat.get('p99'))} | {fmt(lat.get('max'))} "
            f"| {fmt(ratio50, 2)} | {fmt(ratio99, 2)} | {fmt(r.web_cpu_pct, 0)} | {fmt(r.idle_cpu_pct, 0)} "
            f"| {fmt(r.client_cpu_pct, 0)} | {shape_text(r.shape)} |")
    lines += ["", "### Page requests (GET /jobs/<id>, sequential, new connection each) with N sockets open",
              "", "| system, gunicorn | N | no sockets: n | p50 ms | p99 ms | with N sockets: n | p50 ms | p99 ms | max ms "
              "| failed | p99 ÷ no-socket p99 |", "|" + "---|" * 11]
    base_by_config: dict[str, dict[str, Any]] = {}
    for r in rounds:
        if r.system == "raw":
            continue
        if r.pages_base:
            base_by_config[r.config] = r.pages_base
        b, p = base_by_config.get(r.config, {}), r.pages_load
        ratio = p.get("p99", float("nan")) / b["p99"] if b.get("p99") else None
        failed = f"{p.get('failures', 0)} {','.join(p.get('failure_kinds', []))}".strip()
        lines.append(f"| {r.system} {r.config} | {r.n} | {b.get('n', '—')} | {fmt(b.get('p50'))} | {fmt(b.get('p99'))} "
                     f"| {p.get('n', 0)} | {fmt(p.get('p50'))} | {fmt(p.get('p99'))} | {fmt(p.get('max'))} "
                     f"| {failed} | {fmt(ratio, 2)} |")
    notes = [f"- {r.system} {r.config} N={r.n}: {note}" for r in rounds for note in r.notes]
    notes += [f"- {r.system} {r.config} N={r.n}: socket errors: {r.result['errors']}"
              for r in rounds if r.result.get("errors")]
    if notes:
        lines += ["", "Notes:", *notes]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--sockets", default="100,500,1000", help="socket counts, comma-separated")
    p.add_argument("--configs", default="2x600,1x1100",
                   help="gunicorn configs for Longrun: WORKERSxTHREADS[:WORKER_CONNECTIONS] (default 2000), "
                        "comma-separated")
    p.add_argument("--raw-config", default="1x1100", help="gunicorn config of the raw baseline (1 worker = "
                                                          "one listener)")
    p.add_argument("--skip-raw", action="store_true", help="no raw baseline (no ratios)")
    p.add_argument("--jobs", type=int, default=2, help="running jobs per round = worker concurrency (default 2)")
    p.add_argument("--window", type=float, default=15.0,
                   help="seconds of events measured once every socket is ready (default 15)")
    p.add_argument("--interval", type=float, default=0.5,
                   help="seconds between one job's events: demo step length / raw publish period (default 0.5)")
    p.add_argument("--duration", type=float, default=300.0,
                   help="demo job duration_seconds; the jobs are cancelled after the window (default 300)")
    p.add_argument("--baseline-seconds", type=float, default=5.0, help="page probe time with no sockets")
    p.add_argument("--page-gap", type=float, default=0.02, help="pause between page requests (s)")
    p.add_argument("--idle-seconds", type=float, default=3.0, help="sockets held open after the last event, "
                                                                   "to measure idle CPU")
    p.add_argument("--connect-concurrency", type=int, default=50, help="handshakes in flight at once")
    p.add_argument("--connect-timeout", type=float, default=20.0, help="per-socket handshake timeout (s)")
    p.add_argument("--connect-budget", type=float, default=30.0,
                   help="sockets not ready (snapshot received) this long after the first connect count as failed")
    p.add_argument("--final-timeout", type=float, default=20.0,
                   help="how long to wait for every socket's final event after the window")
    p.add_argument("--no-compression", action="store_true",
                   help="do not offer permessage-deflate (browsers always offer it)")
    p.add_argument("--out", help="also write the tables (markdown) to this file")
    p.add_argument("--json", help="write every figure as JSON to this file")
    p.add_argument("--keep-logs", action="store_true", help="keep the process logs directory")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ns = [int(x) for x in args.sockets.split(",") if x.strip()]
    configs = [WebConfig.parse(c) for c in args.configs.split(",") if c.strip()]
    raw_config = WebConfig.parse(args.raw_config)
    raise_nofile()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logdir = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    procs = ProcSet(logdir, ROOT, preexec_fn=raise_nofile)
    taken: set[int] = set()
    redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    env = testing_env(f"{PG_HOST_URL}/{DB_NAME}", redis_url)
    header = [f"## bench_notifications.py — {datetime.now().isoformat(timespec='seconds')}",
              "",
              f"host: {os.cpu_count()} CPUs, load average at start {loadavg()}; N = {ns}; "
              f"{args.jobs} running jobs per round, an event every {args.interval:g} s each, {args.window:g} s window; "
              f"permessage-deflate {'off' if args.no_compression else 'offered (browser-like)'}; "
              f"raw baseline gunicorn {raw_config.label}"]
    print("\n".join(header), flush=True)
    rounds: list[Round] = []
    ok = False
    t_begin = time.monotonic()
    try:
        setup_database_and_redis(DB_NAME, env)
        if not args.skip_raw:
            port = free_port(PORTS, taken)
            cmd = gunicorn_cmd(port, raw_config, "raw_ws_app:app")
            cmd[-1:-1] = ["--pythonpath", str(ROOT)]  # gunicorn.conf.py's hooks import app.*
            raw = procs.start("raw-web", cmd, env, cwd=BENCH_DIR)
            raw.wait_http(f"http://127.0.0.1:{port}/health")
            for n in ns:
                rnd = raw_round(args, raw, port, raw_config, n, redis_url)
                rounds.append(rnd)
                print(f"  raw N={n}: p50 {fmt(rnd.result['latency']['p50'])} ms, p99 "
                      f"{fmt(rnd.result['latency']['p99'])} ms, lost {rnd.result['lost']} "
                      f"[{time.monotonic() - t_begin:.0f} s]", flush=True)
            procs.stop(raw)
        worker = procs.start("worker", [sys.executable, "-m", "celery", "-A", "celery_worker", "worker", "-P",
                                        "prefork", "-c", str(args.jobs), "-n", "bench-ws@%h", "-l", "INFO",
                                        "--without-mingle", "--without-gossip"], env)
        worker.wait_log(" ready.", 60)
        system = "Longrun"
        for config in configs:
            port = free_port(PORTS, taken)
            web = procs.start(f"web-{config.label.replace(' ', '-')}", gunicorn_cmd(port, config, "wsgi:app"), env)
            web.wait_http(f"http://127.0.0.1:{port}/reports")
            for i, n in enumerate(ns):
                try:
                    rnd = longrun_round(args, web, port, config, n, measure_baseline=(i == 0), system=system)
                except (RuntimeError, OSError, requests.RequestException, psycopg2.Error) as exc:
                    # A wedged server: record it, skip its larger N, go on with the next configuration.
                    rnd = Round(system, config.label, n, notes=[f"round failed: {type(exc).__name__}: {exc}"[:300]])
                    rounds.append(rnd)
                    print(f"  {system} {config.label} N={n}: {rnd.notes[0]}", flush=True)
                    break
                rounds.append(rnd)
                print(f"  {system} {config.label} N={n}: p50 {fmt(rnd.result['latency']['p50'])} ms, p99 "
                      f"{fmt(rnd.result['latency']['p99'])} ms, lost {rnd.result['lost']}, pages p99 "
                      f"{fmt(rnd.pages_load.get('p99'))} ms [{time.monotonic() - t_begin:.0f} s]", flush=True)
            errors = [line for line in web.log_text().splitlines() if "Traceback" in line or "[ERROR]" in line]
            if errors:
                header.append(f"web {config.label}: {len(errors)} error lines in its log, e.g. {errors[0][:200]}")
            procs.stop(web)
        ok = True
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        procs.stop_all()
        if rounds:
            header.append(f"total run time {time.monotonic() - t_begin:.0f} s, load average at end {loadavg()}")
            text = print_report(rounds, header)
            if args.out:
                Path(args.out).write_text(text + "\n")
            if args.json:
                Path(args.json).write_text(json.dumps([r.__dict__ for r in rounds], indent=1, default=str))
        if ok and not args.keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
        else:
            print(f"process logs kept in {logdir}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
