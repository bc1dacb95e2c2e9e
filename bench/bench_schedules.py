"""Schedules at 10,000: what a clock tick costs, and how late slots fire (run: .venv/bin/python bench/bench_schedules.py).

Seeds 10,000 enabled schedules in a database of its own: 9,900 daily ones spread over the day ("M H * * *", a
few due each minute) and 100 that fire every minute together (a burst at each whole minute). Then:

* tick cost — the clock's schedule duty (``app.schedules.firing.tick``) while nothing is due, at 100 and at
  10,000 schedules, and the due query's plan (it reads the partial index ``ix_schedules_due``);
* fire lag — two real clock processes (``flask clock``) run for ``BENCH_MINUTES`` whole minutes; the lag of a
  fire is its job's ``created_at`` minus its slot, per job; duplicates per (schedule, slot) are counted.

No worker runs: the jobs wait in line, which is what the fire lag does not depend on.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import PG_HOST_URL, ROOT, ProcSet, fmt, loadavg, percentile, setup_database_and_redis, testing_env

DB_NAME = "longrun_bench_schedules"
DB_URL = f"{PG_HOST_URL}/{DB_NAME}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
MINUTES = int(os.environ.get("BENCH_MINUTES", "3"))
TOTAL, BURST = 10_000, 100
TICKS = 300

SEED = """
INSERT INTO schedules (id, owner, report, params, cron, timezone, enabled, misfire, priority, next_fire_at,
                       created_at, updated_at)
SELECT gen_random_uuid(), 'user:bench' || (n % 200), 'demo', '{{}}', {cron}, 'UTC', true, 'skip', 3, {next_fire},
       now(), now()
FROM generate_series({first}, {last}) AS n
"""
# Daily at minute n % 60 of hour (n / 60) % 24: the next such time after now, in UTC.
DAILY_CRON = "(n % 60) || ' ' || ((n / 60) % 24) || ' * * *'"
DAILY_NEXT = ("date_trunc('day', now()) + make_interval(hours => (n / 60) % 24, mins => n % 60) + "
              "CASE WHEN date_trunc('day', now()) + make_interval(hours => (n / 60) % 24, mins => n % 60) <= now() "
              "THEN interval '1 day' ELSE interval '0' END")
MINUTELY_NEXT = "date_trunc('minute', now()) + interval '1 minute'"


def seed(conn, first: int, last: int, cron: str, next_fire: str) -> None:
    """Insert schedules ``first..last`` (set-based: the API would check each one, for minutes)."""
    with conn.cursor() as cur:
        cur.execute(SEED.format(cron=cron, next_fire=next_fire, first=first, last=last))
        cur.execute("ANALYZE schedules")
    conn.commit()


def tick_cost(app) -> tuple[float, float, float]:
    """p50 / p99 / max milliseconds of the schedule duty when nothing is due (waits out due minutes)."""
    from app.extensions import db
    from app.schedules.firing import tick

    samples = []
    while len(samples) < TICKS:
        if datetime.now(timezone.utc).second >= 58:
            time.sleep(4)  # a whole minute is coming: its fires are not what this measures
        with app.app_context():
            started = time.perf_counter()
            report = tick()
            took = (time.perf_counter() - started) * 1000
            db.session.remove()
        if not (report.fired or report.promoted or report.missed):
            samples.append(took)
    return percentile(samples, 50), percentile(samples, 99), max(samples)


def due_plan(app) -> str:
    """EXPLAIN ANALYZE of the due lookup, as the clock runs it."""
    from app.extensions import db
    from app.schedules.firing import due_schedules

    with app.app_context():
        query = due_schedules(datetime.now(timezone.utc)).compile(db.engine, compile_kwargs={"literal_binds": True})
        lines = db.session.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) {query}")).scalars().all()
        db.session.rollback()
        db.session.remove()
    return "\n".join(lines)


def fire_lags(conn, since: datetime) -> tuple[list[float], list[float], int]:
    """Lag (s) of every fire since ``since``: the burst's, the spread ones'; and the slots fired twice."""
    with conn.cursor() as cur:
        cur.execute("SELECT s.cron = '* * * * *', extract(epoch FROM j.created_at - j.scheduled_for) FROM jobs j "
                    "JOIN schedules s ON s.id = j.schedule_id WHERE j.scheduled_for >= %s", (since,))
        rows = cur.fetchall()
        cur.execute("SELECT count(*) FROM (SELECT 1 FROM jobs WHERE schedule_id IS NOT NULL "
                    "GROUP BY schedule_id, scheduled_for HAVING count(*) > 1) d")
        dupes = cur.fetchone()[0]
    conn.commit()
    return [float(lag) for burst, lag in rows if burst], [float(lag) for burst, lag in rows if not burst], dupes


def run_clocks(env: dict[str, str]) -> datetime:
    """Two clock processes for MINUTES whole minutes; returns the first slot they were there for."""
    procs = ProcSet(ROOT / "test-artifacts" / "bench-schedules")
    procs.logdir.mkdir(parents=True, exist_ok=True)
    try:
        for name in ("clock-a", "clock-b"):
            procs.start(name, [sys.executable, "-m", "flask", "--app", "wsgi:app", "clock"], env).wait_log(
                "clock started", 60)
        now = datetime.now(timezone.utc)
        first = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = first.timestamp() + (MINUTES - 1) * 60 + 10
        time.sleep(max(0.0, end - time.time()))
        return first
    finally:
        procs.stop_all()


def main() -> None:
    """Seed, measure, print."""
    env = testing_env(DB_URL, REDIS_URL)
    setup_database_and_redis(DB_NAME, env)
    os.environ.update({"DATABASE_URL": DB_URL, "REDIS_URL": REDIS_URL, "LONGRUN_ENV": "testing", "SECRET_KEY": "x"})
    from app import create_app

    app = create_app()
    conn = psycopg2.connect(DB_URL)
    seed(conn, 1, BURST, "'* * * * *'", MINUTELY_NEXT)
    small = tick_cost(app)
    seed(conn, BURST + 1, TOTAL, DAILY_CRON, DAILY_NEXT)
    large = tick_cost(app)
    plan = due_plan(app)
    first = run_clocks(env)
    burst, spread, dupes = fire_lags(conn, first)
    print(f"load average: {loadavg()}")
    print(f"tick cost, nothing due (p50 / p99 / max ms): {BURST:,} schedules {fmt(small[0], 2)} / {fmt(small[1], 2)} / "
          f"{fmt(small[2], 2)}; {TOTAL:,} schedules {fmt(large[0], 2)} / {fmt(large[1], 2)} / {fmt(large[2], 2)}")
    print("due lookup at 10,000 schedules:\n  " + plan.replace("\n", "\n  "))
    for name, lags in (("burst (100 every minute)", burst), ("spread (daily, a few a minute)", spread)):
        print(f"fire lag, {name}: {len(lags)} fires, p50 {fmt(percentile(lags, 50) * 1000, 0)} ms, "
              f"p99 {fmt(percentile(lags, 99) * 1000, 0)} ms, max {fmt(max(lags, default=float('nan')) * 1000, 0)} ms")
    every = burst + spread
    print(f"all fires: {len(every)}, p99 {fmt(percentile(every, 99) * 1000, 0)} ms; slots fired twice: {dupes}")


if __name__ == "__main__":
    main()
