"""The purge run of bench_history.py: POSTs at a steady rate while the purge removes a big expired share of the
history in budgeted slices (as the clock runs it) with idle gaps between them; POST latency with and without a
purge running, and how long the purge held a transaction.

Run as a script, this file is the purge driver (inside the app): ``--slice S --idle I``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg2
import requests
from benchlib import ROOT, fmt, percentile

APP_NAME = "longrun-bench-purge"  # the purge's application_name, to find its transactions in pg_stat_activity
POST_BODY = {"report": "demo", "params": {"duration_seconds": 0, "steps": 1}}


class Poster:
    """POSTs ``/reports/v2`` every 1/rate s on a fixed schedule (open loop: a slow answer delays no later send).

    Latency is counted from the scheduled time, so time spent waiting for a free client thread counts too.
    """

    def __init__(self, base: str, rate: float, threads: int = 16) -> None:
        self.base, self.gap = base, 1.0 / rate
        self.pool = ThreadPoolExecutor(threads)
        self.local = threading.local()
        self.results: list[tuple[float, float, int]] = []  # (scheduled wall time, seconds, status)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._schedule, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _schedule(self) -> None:
        t0 = time.perf_counter()
        k = 0
        while not self.stopping.is_set():
            due = t0 + k * self.gap
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.pool.submit(self._post, due, time.time() + (due - time.perf_counter()))
            k += 1

    def _post(self, due: float, wall: float) -> None:
        session = getattr(self.local, "session", None) or requests.Session()
        self.local.session = session
        try:
            status = session.post(self.base + "/reports/v2", json=POST_BODY, timeout=30).status_code
        except requests.RequestException:
            status = 0
        with self.lock:
            self.results.append((wall, time.perf_counter() - due, status))

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.pool.shutdown(wait=True, cancel_futures=True)  # a backlog (the API fell behind) is not sent

    def window(self, spans: list[tuple[float, float]], exclude: list[tuple[float, float]] = ()) -> dict:
        """Latency of the POSTs scheduled in ``spans`` and not in ``exclude`` (wall clock [start, end) pairs):
        p50/p99/max ms, count, failures."""
        def inside(t: float, pairs: list[tuple[float, float]]) -> bool:
            return any(a <= t < b for a, b in pairs)

        with self.lock:
            rows = [(s, st) for w, s, st in self.results if inside(w, spans) and not inside(w, exclude)]
        ms = [s * 1000 for s, _ in rows]
        bad = sum(1 for _, st in rows if st != 202)
        return {"n": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99),
                "max": max(ms) if ms else float("nan"), "failed": bad}


class TransactionWatch(threading.Thread):
    """Samples pg_stat_activity every ``gap`` s for the age of the purge's open transaction; keeps the longest."""

    def __init__(self, dsn: str, gap: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.dsn, self.gap = dsn, gap
        self.longest = 0.0
        self.samples = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not self.stopping.wait(self.gap):
                    cur.execute("SELECT extract(epoch FROM max(clock_timestamp() - xact_start)) FROM pg_stat_activity "
                                "WHERE application_name = %s AND xact_start IS NOT NULL", (APP_NAME,))
                    age = cur.fetchone()[0]
                    self.samples += 1
                    if age is not None:
                        self.longest = max(self.longest, float(age))
        finally:
            conn.close()

    def stop(self) -> float:
        self.stopping.set()
        self.join(5)
        return self.longest


def expiry_hours(dsn: str, rows: int) -> float:
    """The retention (hours, all final states alike) that makes the ``rows`` oldest finished jobs expired now."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT finished_at FROM jobs WHERE state IN ('Succeeded', 'Failed', 'Cancelled') "
                        "ORDER BY finished_at OFFSET %s LIMIT 1", (max(0, rows - 1),))
            edge = cur.fetchone()[0]
    finally:
        conn.close()
    return (datetime.now(timezone.utc) - edge).total_seconds() / 3600.0


def counters_match(dsn: str) -> bool:
    """Whether the jobs-per-state gauges equal the rows left (the purge lowered them exactly)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT report, label, sum(value) FROM job_counters WHERE name = 'in_state' "
                        "GROUP BY report, label HAVING sum(value) <> 0")
            gauges = {(r, s): int(v) for r, s, v in cur.fetchall()}
            cur.execute("SELECT report, state, count(*) FROM jobs GROUP BY report, state")
            rows = {(r, s): int(v) for r, s, v in cur.fetchall()}
    finally:
        conn.close()
    return gauges == rows


def _start_driver(env: dict[str, str], args: Any) -> subprocess.Popen:
    """This file as a subprocess inside the app: budgeted purge slices with idle gaps, one JSON line per slice."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--slice", str(args.purge_slice),
           "--idle", str(args.purge_idle)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def purge_run(site: Any, env: dict[str, str], dsn: str, n: int, args: Any, rate: float) -> dict:
    """POSTs at a steady rate throughout; the purge of ``args.purge_rows`` expired jobs runs in slices with idle
    gaps between them, so the POSTs without a purge are spread over the same minutes as those during one."""
    hours = expiry_hours(dsn, args.purge_rows)
    purge_env = {**env, "PGAPPNAME": APP_NAME, **{f"LONGRUN_KEEP_{s}_HOURS": f"{hours:.6f}"
                                                   for s in ("SUCCEEDED", "FAILED", "CANCELLED")}}
    if args.purge_batch:
        purge_env["LONGRUN_PURGE_BATCH"] = str(args.purge_batch)
    if args.purge_duty_cycle:
        purge_env["LONGRUN_PURGE_DUTY_CYCLE"] = str(args.purge_duty_cycle)
    print(f"  purge run: {args.purge_rows:,} of {n:,} jobs expired (retention {hours:.2f} h); {rate:g} "
          f"POST/s; {args.baseline_seconds:g} s without purge, then {args.purge_slice:g} s slices of purge with "
          f"{args.purge_idle:g} s idle between", flush=True)
    poster = Poster(site.base, rate)
    poster.start()
    t_base = time.time()
    time.sleep(args.baseline_seconds)
    watch = TransactionWatch(dsn)
    watch.start()
    driver = _start_driver(purge_env, args)
    slices = [json.loads(line) for line in driver.stdout]  # one line per slice, as each ends
    driver.wait(60)
    t_end = time.time()
    longest_seen = watch.stop()
    poster.stop()
    if driver.returncode != 0 or not slices:
        raise RuntimeError(f"purge driver failed:\n{driver.stderr.read()[-3000:]}")
    # A POST sent up to 1 s after a slice ended still meets what the slice left queued: count it as during.
    during = [(s["start"], s["end"] + 1.0) for s in slices]
    out = {"rate": rate, "expired_rows": args.purge_rows, "retention_h": hours, "slices": len(slices),
           "purged": sum(s["purged"] for s in slices), "batches": sum(s["batches"] for s in slices),
           "longest_tx_ms_own": max(s["longest_ms"] for s in slices), "longest_tx_ms_seen": longest_seen * 1000,
           "watch_samples": watch.samples, "purge_s": sum(s["end"] - s["start"] for s in slices),
           "without": poster.window([(t_base, t_end)], exclude=during), "during": poster.window(during),
           "counters_match": counters_match(dsn)}
    print(f"  purged {out['purged']:,} in {out['purge_s']:.1f} s of purge ({out['slices']} slices, {out['batches']} "
          f"batches, longest transaction {out['longest_tx_ms_own']:.0f} ms by its own timing, "
          f"{out['longest_tx_ms_seen']:.0f} ms seen in pg_stat_activity); POST p99 {fmt(out['without']['p99'])} → "
          f"{fmt(out['during']['p99'])} ms; counters match the rows: {out['counters_match']}", flush=True)
    return out


def print_purge(runs: list[dict], sequential: dict, target: float) -> None:
    """The purge table: one column per POST rate."""
    print("\n### Purge while POSTs arrive\n")
    print("| figure | " + " | ".join(f"{r['rate']:g} POST/s" for r in runs) + " |")
    print("| --- |" + " --- |" * len(runs))

    def row(name: str, cell: Any) -> None:
        print(f"| {name} | " + " | ".join(cell(r) for r in runs) + " |")

    row("expired jobs purged", lambda r: f"{r['purged']:,} of {r['expired_rows']:,}: {r['batches']} batches, "
        f"{r['slices']} slices, {r['purge_s']:.1f} s of purge ({r['purged'] / max(1e-9, r['purge_s']):,.0f} jobs/s)")
    row("longest purge transaction", lambda r: f"{r['longest_tx_ms_own']:.0f} ms (own timing), "
        f"{r['longest_tx_ms_seen']:.0f} ms (pg_stat_activity, {r['watch_samples']} samples)")
    for name, key in (("POST without purge", "without"), ("POST during purge", "during")):
        row(f"{name}: p50 / p99 / max ms", lambda r, k=key: f"{fmt(r[k]['p50'])} / {fmt(r[k]['p99'])} / "
            f"{fmt(r[k]['max'])} ({r[k]['n']} POSTs, {r[k]['failed']} not 202)")
    row("p99 during ÷ without", lambda r: f"{r['during']['p99'] / r['without']['p99']:.2f}× (≤ {target:g}×: "
        f"{'met' if r['during']['p99'] / r['without']['p99'] <= target else 'NOT met'})")
    # Open-loop POSTs queue without bound once the API cannot keep up: then neither p99 measures the purge.
    row("API keeps up without purge", lambda r: "yes" if r["without"]["p50"] < 5 * sequential["p50"] else
        f"NO: p50 {fmt(r['without']['p50'])} ms vs {fmt(sequential['p50'])} ms sequential (requests queue)")
    row("jobs-per-state gauges equal the rows left", lambda r: "yes" if r["counters_match"] else "NO")


def drive(slice_s: float, idle_s: float) -> None:
    """Inside the app: purge in budgeted slices (as the clock does) with idle gaps, a JSON line per slice."""
    sys.path.insert(0, str(ROOT))
    from app import create_app
    from app.retention.purge import purge

    app = create_app()
    with app.app_context():
        while True:
            start = time.time()
            report = purge(budget=slice_s)
            print(json.dumps({"start": start, "end": time.time(), "purged": report.total, "batches": report.batches,
                              "longest_ms": report.longest_batch * 1000, "more": report.more}), flush=True)
            if not report.more:
                return
            time.sleep(idle_s)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="purge driver of bench_history.py (run inside the app)")
    parser.add_argument("--slice", type=float, required=True)
    parser.add_argument("--idle", type=float, required=True)
    opts = parser.parse_args()
    drive(opts.slice, opts.idle)
