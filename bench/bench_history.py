#!/usr/bin/env python3
"""History at scale: every read at 10 k / 100 k / 1 M / 10 M finished jobs, the largest ÷ smallest ratio,
the purge of a big expired share while 50 jobs/s come in, and `flask db upgrade` 0003 → head on each size.

    .venv/bin/python bench/bench_history.py                      # 10k and 100k, about 3-4 minutes
    .venv/bin/python bench/bench_history.py --up-to 1M           # 10k, 100k, 1M
    .venv/bin/python bench/bench_history.py --sizes 10k,10M      # any list
    .venv/bin/python bench/bench_history.py --help

It owns: the PostgreSQL databases ``longrun_bench_history_<size>`` (``--db-prefix``; each dropped and re-created,
dropped again after its size unless ``--keep-db``), Redis DB 7 (``--redis-db``, flushed), one port in 5500-5599,
and the gunicorn and purge-driver processes it starts. See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import psycopg2
import redis
import requests

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from benchlib import PG_HOST_URL, ProcSet, fmt, free_port, loadavg, percentile, recreate_database  # noqa: E402
from history_reads import Read, discover_reads  # noqa: E402
from history_seed import BIG_OWNER, SeedPlan, job_id_sql, search_terms, seed  # noqa: E402

LADDER = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}
DB_PREFIX = "longrun_bench_history"
REDIS_DB = 7
PORT_RANGE = range(5500, 5600)
POST_BODY = {"report": "demo", "params": {"duration_seconds": 0, "steps": 1}}
GB_PER_MILLION = 1.75  # jobs + 3 events + result + every index: 1.73 GB measured at 1 M
TARGET_MS, SEARCH_TARGET_MS, RATIO_TARGET, POST_TARGET, PURGE_TARGET = 100.0, 300.0, 2.0, 1.10, 1.5


# --------------------------------------------------------------------------- small helpers
def parse_size(text: str) -> int:
    """``10k``, ``1M``, ``2.5M`` or a plain integer."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmM]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()])


def label(n: int) -> str:
    """10000 -> 10k, 1000000 -> 1M."""
    for suffix, unit in (("M", 1_000_000), ("k", 1_000)):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def stats(samples: list[float]) -> dict:
    """p50 / p99 / max in ms of samples in seconds."""
    ms = [s * 1000 for s in samples]
    return {"n": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms) if ms else float("nan")}


def app_env(db_url: str, redis_url: str) -> dict[str, str]:
    """The inherited environment minus Longrun settings, plus a testing Longrun on our database, one worker."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LONGRUN_", "GUNICORN_")) and k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY",
                                                                        "PORT", "WEB_CONCURRENCY", "PGAPPNAME"}}
    env.update({"LONGRUN_ENV": "testing", "SECRET_KEY": "bench-history", "DATABASE_URL": db_url,
                "REDIS_URL": redis_url, "WEB_CONCURRENCY": "1", "PYTHONUNBUFFERED": "1",
                # No worker runs: posted jobs stay Enqueued, so every per-owner limit is off (old and new names).
                "LONGRUN_MAX_ACTIVE_PER_OWNER": "0", "LONGRUN_MAX_WAITING_PER_OWNER": "0",
                "LONGRUN_MAX_JOBS_PER_MINUTE": "0"})
    return env


def flask(env: dict[str, str], *args: str, timeout: float = 7200) -> tuple[float, str]:
    """Run ``flask --app wsgi:app <args>``; (seconds, stdout). Raises with its output on failure."""
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:app", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return time.perf_counter() - started, run.stdout


def sql(dsn: str, statement: str, params: tuple = (), autocommit: bool = True) -> list[tuple]:
    """One statement on its own connection; its rows (if any)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = autocommit
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def claim(prefix: str) -> psycopg2.extensions.connection:
    """A session advisory lock on ``prefix`` for the whole run: two runs would drop each other's databases."""
    conn = psycopg2.connect(f"{PG_HOST_URL}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"bench_history:{prefix}",))
        if not cur.fetchone()[0]:
            raise SystemExit(f"another bench_history run uses the databases {prefix}_*: wait for it, or pass "
                             "--db-prefix (and --redis-db) of your own")
    return conn


def drop_database(name: str) -> None:
    """DROP DATABASE ... WITH (FORCE)."""
    sql(f"{PG_HOST_URL}/postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- database per size
class WriteProbe(threading.Thread):
    """Updates one seeded job row every ``gap`` seconds and records how long each write took (writes blocked?)."""

    def __init__(self, dsn: str, n: int, gap: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.dsn, self.n, self.gap = dsn, n, gap
        self.samples: list[float] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        k = 0
        try:
            with conn.cursor() as cur:
                while not self.stopping.wait(self.gap):
                    k = k % self.n + 1
                    t0 = time.perf_counter()
                    try:
                        cur.execute(f"UPDATE jobs SET updated_at = updated_at WHERE id = {job_id_sql('%s')}", (k,))
                    except psycopg2.Error as exc:
                        self.errors.append(str(exc).strip()[:200])
                    self.samples.append(time.perf_counter() - t0)
        finally:
            conn.close()

    def stop(self) -> dict:
        """Stop and summarise."""
        self.stopping.set()
        self.join(30)
        return {**stats(self.samples), "errors": self.errors[:5]}


def prepare(n: int, db: str, env: dict[str, str]) -> dict:
    """A fresh database with ``n`` seeded jobs, upgraded to head and vacuumed; what each step cost."""
    dsn = f"{PG_HOST_URL}/{db}"
    plan = SeedPlan(n)
    recreate_database(db)
    out: dict = {"rows": n, "big_owner_jobs": plan.big_owner_jobs}
    flask(env, "db", "upgrade", "0002")
    print(f"  seeding {n:,} jobs (3 events each) ...", flush=True)
    out["seed_s"] = seed(dsn, plan, progress=lambda line: print(line, flush=True))
    # 0003 backfills job_counters from the rows: the counters match the seed by the migration's own SQL.
    out["upgrade_0003_s"], _ = flask(env, "db", "upgrade", "0003")
    probe = WriteProbe(dsn, n)
    probe.start()
    out["upgrade_head_s"], _ = flask(env, "db", "upgrade")  # 0004+: CONCURRENTLY indexes and their backfills
    out["write_probe"] = probe.stop()
    started = time.perf_counter()
    sql(dsn, "VACUUM (ANALYZE)")  # what autovacuum would have done by then; index-only scans need it
    out["vacuum_s"] = time.perf_counter() - started
    out["db_size_gb"] = sql(dsn, "SELECT pg_database_size(current_database())")[0][0] / 2**30
    out["heads"] = sql(dsn, "SELECT version_num FROM alembic_version")[0][0]
    return out


def reused(n: int, db: str, env: dict[str, str]) -> dict:
    """A database an earlier run kept (--keep-db), upgraded to head (timed); nothing seeded, so no seed times."""
    dsn = f"{PG_HOST_URL}/{db}"
    plan = SeedPlan(n)
    count = sql(dsn, "SELECT count(*) FROM jobs")[0][0]
    if count < n:
        raise SystemExit(f"{db} holds {count:,} jobs, not {n:,}: seed it again (without --reuse-db)")
    out: dict = {"rows": n, "big_owner_jobs": plan.big_owner_jobs, "seed_s": 0.0, "upgrade_0003_s": 0.0,
                 "vacuum_s": 0.0}
    probe = WriteProbe(dsn, n)
    probe.start()
    out["upgrade_head_s"], _ = flask(env, "db", "upgrade")
    out["write_probe"] = probe.stop()
    out["db_size_gb"] = sql(dsn, "SELECT pg_database_size(current_database())")[0][0] / 2**30
    out["heads"] = sql(dsn, "SELECT version_num FROM alembic_version")[0][0]
    return out


def disk_check(n: int, keep: list[int]) -> None:
    """Refuse a size the disk cannot hold (with the databases kept by --keep-db)."""
    need = GB_PER_MILLION * (n + sum(keep)) / 1e6 * 1.3 + 2
    free = shutil.disk_usage("/var/lib/postgresql" if Path("/var/lib/postgresql").exists() else "/").free / 2**30
    if free < need:
        raise SystemExit(f"{label(n)} needs about {need:.0f} GB free for PostgreSQL, {free:.0f} GB are")


# --------------------------------------------------------------------------- the web server and its reads
class Site:
    """One gunicorn (one worker, gthread, production settings) on one database, and a keep-alive client."""

    def __init__(self, procs: ProcSet, env: dict[str, str], name: str, workers: int = 1) -> None:
        for _ in range(5):  # a port found free can be taken by another benchmark before gunicorn binds it
            port = free_port(PORT_RANGE)
            self.base = f"http://127.0.0.1:{port}"
            self.proc = procs.start(name, [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                           "--bind", f"127.0.0.1:{port}", "wsgi:app"],
                                    {**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers)}, stop_signal=signal.SIGINT)
            if self._serving(port):
                break
            procs.stop(self.proc)
        else:
            raise RuntimeError(f"{name}: no port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1} stayed ours")
        self.proc.wait_http(self.base + "/healthz", timeout=60)
        self.session = requests.Session()

    def _serving(self, port: int, timeout: float = 60) -> bool:
        """Whether our gunicorn (not another process that took the port first) listens on ``port``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.alive():
            for p in self.proc.tree():
                try:
                    if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in p.net_connections("tcp")):
                        return True
                except psutil.Error:
                    pass
            time.sleep(0.1)
        return False

    def get(self, path: str, headers: dict | None = None) -> requests.Response:
        """GET ``path`` (a path or an absolute URL)."""
        url = path if path.startswith("http") else self.base + path
        return self.session.get(url, headers=headers or {}, timeout=60)

    def time(self, read: Read, n: int, warmup: int) -> dict:
        """Warm up, then ``n`` sequential requests: p50/p99/max ms and any non-200 answers."""
        errors = []
        for _ in range(warmup):
            self.get(read.path, read.headers)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = self.get(read.path, read.headers)
            samples.append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors.append(r.status_code)
        return {**stats(samples), "errors": errors[:3], "path": read.path}

    def post_once(self, errors: list[int]) -> float:
        """One ``POST /reports/v2`` (keep-alive, one owner, limits off): seconds; a non-202 goes to ``errors``."""
        t0 = time.perf_counter()
        r = self.session.post(self.base + "/reports/v2", json=POST_BODY, timeout=60)
        if r.status_code != 202:
            errors.append(r.status_code)
        return time.perf_counter() - t0


def interleaved_posts(site: Site, empty: Site, n: int, warmup: int = 5) -> tuple[dict, dict]:
    """``n`` POSTs to each site, one to each in turn (a load swing hits both alike), after ``warmup`` each."""
    samples: dict[str, list[float]] = {"site": [], "empty": []}
    errors: dict[str, list[int]] = {"site": [], "empty": []}
    for i in range(warmup + n):
        for key, target in (("site", site), ("empty", empty)):
            seconds = target.post_once(errors[key])
            if i >= warmup:
                samples[key].append(seconds)
    return ({**stats(samples["site"]), "errors": errors["site"][:3]},
            {**stats(samples["empty"]), "errors": errors["empty"][:3]})


def measure_size(n: int, args: argparse.Namespace, procs: ProcSet, redis_url: str, empty_env: dict[str, str]) -> dict:
    """Seed, upgrade, serve and time every read at one size (the purge run too if ``purge``)."""
    db = f"{args.db_prefix}_{label(n).lower()}"
    env = app_env(f"{PG_HOST_URL}/{db}", redis_url)
    print(f"\n== {n:,} jobs: database {db} (load {loadavg()})", flush=True)
    out = {"prepare": reused(n, db, env) if args.reuse_db else prepare(n, db, env)}
    p = out["prepare"]
    kept = "(a database kept by an earlier run, upgraded to head) " if args.reuse_db else ""
    print(f"  {kept}seed {p['seed_s']:.1f} s, 0003 backfill {p['upgrade_0003_s']:.1f} s, 0003 → head {p['upgrade_head_s']:.1f} s "
          f"(writes during it: max {fmt(p['write_probe']['max'])} ms), VACUUM ANALYZE {p['vacuum_s']:.1f} s, "
          f"{p['db_size_gb']:.2f} GB", flush=True)
    _, token = flask(env, "tokens", "create", BIG_OWNER.removeprefix("user:"))
    terms = search_terms(f"{PG_HOST_URL}/{db}", SeedPlan(n))
    site = Site(procs, env, f"gunicorn-{label(n)}")
    try:
        reads = discover_reads(site, SeedPlan(n), terms, token.strip(), args.hops)
        out["reads"] = {}
        for read in reads:
            out["reads"][read.name] = site.time(read, args.requests, args.warmup)
            r = out["reads"][read.name]
            r["note"] = read.note
            print(f"  {read.name:<34} p50 {fmt(r['p50']):>7} ms  p99 {fmt(r['p99']):>7} ms  {read.note}"
                  f"{'  ERRORS ' + str(r['errors']) if r['errors'] else ''}", flush=True)
        empty = Site(procs, empty_env, f"gunicorn-empty-{label(n)}")
        try:
            out["post"], out["post_empty"] = interleaved_posts(site, empty, args.requests)
        finally:
            procs.stop(empty.proc)
        print(f"  {'POST /reports/v2':<34} p50 {fmt(out['post']['p50']):>7} ms  p99 {fmt(out['post']['p99']):>7} ms"
              f"  (empty database, the same minutes: p50 {fmt(out['post_empty']['p50'])} ms)", flush=True)
        procs.stop(site.proc)
        if args.purge_at == n:
            from history_purge import purge_run

            # Production's shape (WEB_CONCURRENCY=2): one GIL-bound worker alone is near its limit at 50 POST/s.
            site = Site(procs, env, f"gunicorn-{label(n)}-purge", workers=args.purge_web_workers)
            # Each rate purges the next-oldest share: the rows the previous run left are the oldest now.
            out["purge"] = [purge_run(site, env, f"{PG_HOST_URL}/{db}", n, args, rate) for rate in args.purge_rates]
    finally:
        procs.stop(site.proc)
        redis.Redis.from_url(redis_url).flushdb()
        if not (args.keep_db or args.reuse_db):
            drop_database(db)
    return out


def empty_database(args: argparse.Namespace, redis_url: str) -> dict[str, str]:
    """An empty database at head, the baseline for 'within 10 %': each size's POSTs alternate with POSTs to it."""
    db = f"{args.db_prefix}_empty"
    env = app_env(f"{PG_HOST_URL}/{db}", redis_url)
    recreate_database(db)
    flask(env, "db", "upgrade")
    return env


# --------------------------------------------------------------------------- the report
def verdict(ok: bool) -> str:
    """'met' or 'NOT met'."""
    return "met" if ok else "NOT met"


def print_report(result: dict, sizes: list[int]) -> None:
    """Markdown tables: preparation, reads with ratios and targets, POST, purge."""
    per = result["sizes"]
    small, large = label(sizes[0]), label(sizes[-1])
    print("\n### Preparation (seed at 0002, `flask db upgrade 0003` backfills counters, then 0003 → head)\n")
    print("| size | seed s | 0003 backfill s | 0003 → head s | UPDATE during upgrade p99 / max ms | VACUUM ANALYZE s | database GB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        p = per[label(n)]["prepare"]
        w = p["write_probe"]
        print(f"| {label(n)} | {p['seed_s']:.1f} | {p['upgrade_0003_s']:.1f} | {p['upgrade_head_s']:.1f} | "
              f"{fmt(w['p99'])} / {fmt(w['max'])} ({w['n']} writes{', errors ' + str(len(w['errors'])) if w['errors'] else ''}) | "
              f"{p['vacuum_s']:.1f} | {p['db_size_gb']:.2f} |")
    names = list(per[label(sizes[-1])]["reads"])
    print(f"\n### Reads, p50 / p99 ms (one gunicorn worker, warm, {result['args']['requests']} requests each)\n")
    print("| read | " + " | ".join(label(n) for n in sizes) + f" | {large} ÷ {small} p50 / p99 | target |")
    print("| --- | " + " | ".join("---" for _ in sizes) + " | --- | --- |")
    for name in names:
        cells = [per[label(n)]["reads"].get(name, {}) for n in sizes]
        first, last = cells[0], cells[-1]
        limit = SEARCH_TARGET_MS if name.startswith("search") else TARGET_MS
        r50 = last.get("p50", float("nan")) / first.get("p50", float("nan"))
        r99 = last.get("p99", float("nan")) / first.get("p99", float("nan"))
        ok = last.get("p99", 1e9) < limit and r50 <= RATIO_TARGET and not any(c.get("errors") for c in cells)
        print(f"| {name} | " + " | ".join(f"{fmt(c.get('p50'))} / {fmt(c.get('p99'))}"
                                          + (f" ({c['note']})" if c.get("note") else "") for c in cells)
              + f" | {fmt(r50, 2)}× / {fmt(r99, 2)}× | p99 < {limit:.0f} ms, ≤ {RATIO_TARGET:.0f}×: {verdict(ok)} |")
    print("\n### `POST /reports/v2` (no worker: the job stays Enqueued), alternating with an empty database\n")
    print("| database | p50 / p99 ms | empty database, same minutes: p50 / p99 ms | ÷ empty p50 |")
    print("| --- | --- | --- | --- |")
    for n in sizes:
        post, empty = per[label(n)]["post"], per[label(n)]["post_empty"]
        ratio = post["p50"] / empty["p50"]
        print(f"| {label(n)} | {fmt(post['p50'])} / {fmt(post['p99'])} | {fmt(empty['p50'])} / {fmt(empty['p99'])} | "
              f"{ratio:.2f}× (≤ {POST_TARGET:.2f}×: {verdict(ratio <= POST_TARGET)}) |")
    at = next((label(n) for n in sizes if "purge" in per[label(n)]), None)
    if at:
        from history_purge import print_purge

        print_purge(per[at]["purge"], per[at]["post"], PURGE_TARGET)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=lambda s: [parse_size(x) for x in s.split(",")], default=None,
                   help="comma-separated sizes, e.g. 10k,100k,1M,10M (default: the ladder up to --up-to)")
    p.add_argument("--up-to", type=parse_size, default=100_000,
                   help="stop the ladder 10k, 100k, 1M, 10M at this size (default 100k)")
    p.add_argument("--requests", type=int, default=30, help="timed requests per read (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed requests per read first (default 3)")
    p.add_argument("--hops", type=int, default=50, help="'older' / next links followed for a deep page (default 50)")
    p.add_argument("--purge-rows", type=parse_size, default=None,
                   help="expired rows for the purge run (default: 1M, at most a quarter of the largest size)")
    p.add_argument("--purge-rates", type=lambda s: [float(x) for x in s.split(",")], default=[50.0],
                   help="POSTs per second during the purge run; several (e.g. 20,50) make one purge run each")
    p.add_argument("--baseline-seconds", type=float, default=10.0,
                   help="POSTs at that rate before the purge starts (default 10)")
    p.add_argument("--purge-slice", type=float, default=10.0,
                   help="seconds of purge per slice, i.e. its time budget per call (default 10)")
    p.add_argument("--purge-idle", type=float, default=10.0,
                   help="seconds without purge between slices, for the baseline (default 10)")
    p.add_argument("--purge-batch", type=int, default=None, help="LONGRUN_PURGE_BATCH for the purge (default: app's)")
    p.add_argument("--purge-duty-cycle", type=float, default=None,
                   help="LONGRUN_PURGE_DUTY_CYCLE for the purge (default: the app's)")
    p.add_argument("--purge-web-workers", type=int, default=2,
                   help="gunicorn workers during the purge run (default 2, production's WEB_CONCURRENCY)")
    p.add_argument("--skip-purge", action="store_true", help="no purge run")
    p.add_argument("--keep-db", action="store_true", help="keep each size's database (they are big)")
    p.add_argument("--reuse-db", action="store_true",
                   help="time the reads on the databases an earlier --keep-db run left (upgraded to head, not seeded)")
    p.add_argument("--db-prefix", default=DB_PREFIX, help=f"database names: <prefix>_<size> (default {DB_PREFIX})")
    p.add_argument("--redis-db", type=int, default=REDIS_DB, help=f"Redis DB number, flushed (default {REDIS_DB})")
    p.add_argument("--keep-logs", action="store_true", help="keep the process logs")
    p.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    args = p.parse_args()
    sizes = sorted(args.sizes or [n for n in LADDER.values() if n <= args.up_to])
    args.purge_at = None if args.skip_purge else sizes[-1]
    args.purge_rows = args.purge_rows or min(1_000_000, sizes[-1] // 4)
    logdir = Path(tempfile.mkdtemp(prefix="bench-history-"))
    procs = ProcSet(logdir)
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    guard = claim(args.db_prefix)  # noqa: F841 - held (open) until the run ends
    redis.Redis.from_url(redis_url).flushdb()
    print(f"bench_history: sizes {', '.join(label(n) for n in sizes)}; {os.cpu_count()} cpus; load {loadavg()}; "
          f"logs {logdir}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", flush=True)
    result: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "sizes": {}}
    ok = False
    try:
        empty_env = empty_database(args, redis_url)
        kept: list[int] = []
        for n in sizes:
            if not args.reuse_db:
                disk_check(n, kept)
            result["sizes"][label(n)] = measure_size(n, args, procs, redis_url, empty_env)
            if args.keep_db:
                kept.append(n)
        print_report(result, sizes)
        ok = True
    finally:
        procs.stop_all()
        drop_database(f"{args.db_prefix}_empty")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, default=str))
        if ok and not args.keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
        else:
            print(f"logs kept in {logdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
