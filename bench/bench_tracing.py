"""Tracing on vs off: the same bench_jobs.py run twice, once exporting every span over OTLP/HTTP.

    .venv/bin/python bench/bench_tracing.py            # about 1.5 minutes
    .venv/bin/python bench/bench_tracing.py -n 100 -m 200

"On" means what production would run: the Flask, Celery, SQLAlchemy and Redis instrumentations with a
batch span processor exporting over OTLP/HTTP, here to a minimal receiver on 127.0.0.1 that accepts and
discards the payloads (so the collector's own cost is not counted). Both runs skip the raw Celery phase.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BENCH = Path(__file__).resolve().parent


class Sink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and counts them."""

    exports = 0
    bytes = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Sink.exports += 1
        Sink.bytes += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def run(label: str, extra_env: dict[str, str], args: argparse.Namespace) -> dict:
    """One bench_jobs.py run; returns its JSON figures."""
    out = Path(tempfile.mkdtemp(prefix="bench-tracing-")) / f"{label}.json"
    # Longrun alone: the baselines, the peer and the drain test are not what this compares.
    cmd = [sys.executable, str(BENCH / "bench_jobs.py"), "--skip-raw", "--skip-floor", "--skip-peer", "--drain", "0",
           "-n", str(args.n), "-m", str(args.m), "--json", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(extra_env)
    print(f"run {label} ...", flush=True)
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    """Run off, then on; print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="sequential jobs per run")
    parser.add_argument("-m", type=int, default=500, help="throughput jobs per run")
    args = parser.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    off = run("off", {}, args)
    on = run("on", {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_port}",
                    "OTEL_BSP_SCHEDULE_DELAY": "1000"}, args)
    sink.shutdown()
    rows = [("e2e p50 ms", off["longrun_e2e"]["p50"], on["longrun_e2e"]["p50"]),
            ("e2e p99 ms", off["longrun_e2e"]["p99"], on["longrun_e2e"]["p99"]),
            ("pickup p50 ms (DB)", off["pickup_db"]["p50"], on["pickup_db"]["p50"]),
            ("jobs/s", off["longrun_jobs_per_s"], on["longrun_jobs_per_s"])]
    print(f"\n{'figure':<22}{'off':>10}{'on':>10}{'on/off':>9}")
    for name, a, b in rows:
        print(f"{name:<22}{a:>10.2f}{b:>10.2f}{b / a:>9.2f}")
    print(f"\nOTLP exports received while on: {Sink.exports} requests, {Sink.bytes / 1e6:.1f} MB")
    if Sink.exports == 0:
        sys.exit("tracing was not on: no export reached the receiver")


if __name__ == "__main__":
    main()
