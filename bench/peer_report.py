"""``bench_jobs.py``'s closing table: Longrun, the stack floor, raw Celery and Procrastinate side by side, and the
issue-14 targets computed from that one run."""
from __future__ import annotations

from dataclasses import dataclass, field

from jobs_common import summary

CPU_KEYS = ("web", "worker", "postgres", "redis", "client")


@dataclass
class Row:
    """One system's figures from this run (NaN where it was not measured)."""

    name: str
    e2e: dict
    rate: float = float("nan")
    cpu_ms: dict[str, float] = field(default_factory=dict)
    drain: dict | None = None


def _rate(done: int | None, elapsed: float | None) -> float:
    return done / elapsed if done and elapsed else float("nan")


def _cpu_per_job(tp: dict, jobs: int, web_key: str = "cpu_web", worker_key: str = "cpu_worker") -> dict[str, float]:
    """CPU milliseconds per job of each process group during a throughput run."""
    per = 1000.0 / max(1, jobs)
    svc = tp.get("svc_cpu", {})
    out = {"web": tp.get(web_key), "worker": tp.get(worker_key), "postgres": svc.get("postgres"),
           "redis": svc.get("redis"), "client": svc.get("client")}
    return {k: v * per for k, v in out.items() if v is not None}


def rows_of(raw: dict, floor: dict, lr: dict, peer: dict) -> list[Row]:
    """The side-by-side rows, in the order the table prints them."""
    rows = []
    rtp, ftp, ltp = raw.get("tp", {}), floor.get("tp", {}), lr.get("tp", {})
    rows.append(Row("raw Celery (apply_async -> notice)", summary(raw.get("rt", [])),
                    _rate(rtp.get("completed"), rtp.get("elapsed")),
                    _cpu_per_job(rtp, rtp.get("m", 0), worker_key="worker_cpu")))
    rows.append(Row("stack floor (HTTP, 3 commits, Celery)", summary(floor.get("rt", [])),
                    _rate(ftp.get("completed"), ftp.get("elapsed")), _cpu_per_job(ftp, ftp.get("m", 0))))
    praw, pweb = peer.get("raw", {}), peer.get("web", {})
    rows.append(Row("Procrastinate raw (defer -> notice)", summary(praw.get("rt", [])),
                    _rate(praw.get("tp", {}).get("completed"), praw.get("tp", {}).get("elapsed")),
                    _cpu_per_job(praw.get("tp", {}), praw.get("tp", {}).get("m", 0)), peer.get("drain")))
    rows.append(Row("Procrastinate behind Flask (POST -> notice)", summary(pweb.get("rt", [])),
                    _rate(pweb.get("tp", {}).get("completed"), pweb.get("tp", {}).get("elapsed")),
                    _cpu_per_job(pweb.get("tp", {}), pweb.get("tp", {}).get("m", 0))))
    seq = lr.get("seq", [])
    rows.append(Row("Longrun (POST -> Succeeded event)", summary([r["succ"] - r["t0"] for r in seq]),
                    _rate(ltp.get("succeeded_events"), ltp.get("elapsed")),
                    _cpu_per_job(ltp, ltp.get("accepted", 0)), lr.get("drain")))
    return rows


def _f(x: float | None, width: int = 7, digits: int = 1) -> str:
    return f"{'—':>{width}}" if x is None or x != x else f"{x:{width}.{digits}f}"


def drain_rates(d: dict | None) -> tuple[float, float]:
    """(jobs/s from starting the workers to the last job done, jobs/s from the first job done to the last)."""
    if not d or not d.get("completed"):
        return float("nan"), float("nan")
    steady = (d["completed"] - 1) / d["steady"] if d.get("steady") else float("nan")
    return d["completed"] / d["elapsed"], steady


def print_rows(rows: list[Row]) -> None:
    """The side-by-side table: latency, throughput, drain, CPU per job."""
    print("\n6. Side by side (this run; CPU ms per job during the throughput run; pg = the backends of the bench's"
          " databases, redis* = the whole Redis server)")
    print(f"  {'system':<44} {'p50 ms':>7} {'p99 ms':>7} {'jobs/s':>7} {'drain/s':>7} {'steady':>7}"
          f" {'web':>6} {'worker':>6} {'pg':>6} {'redis*':>6} {'client':>6}")
    print("  " + "-" * 124)
    for r in rows:
        start, steady = drain_rates(r.drain)
        cpu = "".join(_f(r.cpu_ms.get(k), 7, 2) for k in CPU_KEYS)
        print(f"  {r.name:<44} {_f(r.e2e['p50'])} {_f(r.e2e['p99'])} {_f(r.rate)} {_f(start)} {_f(steady)}{cpu}")
    for r in rows:
        if r.drain:
            per = 1000.0 / max(1, r.drain["completed"] - 1)
            print(f"  drain, {r.name.split(' (')[0]}: {r.drain['completed']}/{r.drain['jobs']} jobs, first done "
                  f"{r.drain['to_first']:.2f} s after starting the worker, last {r.drain['elapsed']:.2f} s; CPU per job "
                  f"after the first: worker {r.drain['cpu_worker'] * per:.2f} ms, postgres "
                  f"{r.drain['svc_cpu'].get('postgres', 0) * per:.2f} ms; worker log errors: {len(r.drain['log_errors'])}")


def _ratio(a: float, b: float) -> float:
    return a / b if b and b == b and a == a else float("nan")


def _verdict(value: float, ok: bool) -> str:
    return "—" if value != value else ("MET" if ok else "NOT MET")


def targets(rows: list[Row], pickup_p50_ms: float) -> dict[str, float]:
    """Print the issue-14 targets from this run's rows; return the ratios."""
    raw, floor, praw, pweb, lr = rows
    out = {
        "e2e_p50_over_floor": _ratio(lr.e2e["p50"], floor.e2e["p50"]),
        "throughput_over_floor": _ratio(lr.rate, floor.rate),
        "throughput_over_procrastinate_flask": _ratio(lr.rate, pweb.rate),
        "drain_over_procrastinate": _ratio(drain_rates(lr.drain)[0], drain_rates(praw.drain)[0]),
        "drain_steady_over_procrastinate": _ratio(drain_rates(lr.drain)[1], drain_rates(praw.drain)[1]),
        "pickup_p50_ms": pickup_p50_ms,
    }
    print("\n7. Issue-14 targets (ratios from this run)")
    lines = [
        ("Longrun e2e p50 / stack floor e2e p50", out["e2e_p50_over_floor"], "<= 1.5", out["e2e_p50_over_floor"] <= 1.5),
        ("Longrun jobs/s / stack floor jobs/s", out["throughput_over_floor"], ">= 0.7", out["throughput_over_floor"] >= 0.7),
        ("Longrun jobs/s / Procrastinate-behind-Flask jobs/s", out["throughput_over_procrastinate_flask"], ">= 1",
         out["throughput_over_procrastinate_flask"] >= 1),
        ("Longrun drain / Procrastinate drain (start -> last)", out["drain_over_procrastinate"], ">= 1",
         out["drain_over_procrastinate"] >= 1),
        ("  the same from the first job done (boot left out)", out["drain_steady_over_procrastinate"], "(info)", True),
    ]
    for label, value, target, ok in lines:
        verdict = "" if target == "(info)" else _verdict(value, ok)
        print(f"  {label:<56} {_f(value, 6, 2)}x   target {target:<7} {verdict}")
    print(f"  {'Longrun idle pickup p50 (created_at -> started_at)':<56} {_f(pickup_p50_ms, 6, 2)} ms target < 50 ms "
          f"{_verdict(pickup_p50_ms, pickup_p50_ms < 50)}")
    out["raw_celery_rate"] = raw.rate
    return out


def peer_report(raw: dict, floor: dict, lr: dict, peer: dict, pickup_p50_ms: float) -> dict:
    """Print the side-by-side table and the targets; return the figures for ``--json``."""
    rows = rows_of(raw, floor, lr, peer)
    print_rows(rows)
    ratios = targets(rows, pickup_p50_ms)
    table = {r.name: {"e2e": r.e2e, "jobs_per_s": r.rate, "cpu_ms_per_job": r.cpu_ms,
                      "drain_per_s": drain_rates(r.drain)[0], "drain_steady_per_s": drain_rates(r.drain)[1]}
             for r in rows}
    return {"side_by_side": table, "targets": ratios}
