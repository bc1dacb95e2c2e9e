"""Figures and tables of bench_dispatch.py: decision cost per queue length, pickup, fairness, drain rate."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime

from benchlib import fmt, percentile
from dispatch_decisions import DecisionStats

KIND_ORDER = ("lock", "pauses", "capacity", "in flight", "owner pick", "next job", "job update", "owner rows", "other")


def ms(values: list[float], p: float) -> float:
    """Percentile ``p`` of seconds, in milliseconds."""
    return percentile([v * 1000.0 for v in values], p)


def ratio(a: float, b: float) -> float:
    """a / b, NaN when either is missing or b is 0."""
    return a / b if b and a == a and b == b else float("nan")


# --------------------------------------------------------------------------- decisions
def decision_row(s: DecisionStats) -> list[str]:
    """One table row: the decision's time, per job handed out, statements and SQL time."""
    per_job = [t / n for t, n in zip(s.seconds, s.handed_out, strict=True) if n]
    return [s.label, f"{s.waiting:,}", str(s.slots), fmt(s.jobs_per_decision(), 2), fmt(ms(s.seconds, 50), 2),
            fmt(ms(s.seconds, 99), 2), fmt(ms(per_job, 50), 2) if per_job else "—",
            fmt(statistics.fmean(s.statements), 1), fmt(ms(s.sql_seconds, 50), 2)]


def print_decisions(all_stats: list[DecisionStats]) -> None:
    """The decision table and, per row, where its SQL time goes."""
    head = ["queue", "waiting", "free slots", "jobs/decision", "decision p50 ms", "p99 ms", "per job p50 ms",
            "statements", "SQL p50 ms"]
    print_table("1. One dispatch_ready() decision (in-process, the real code; jobs put back after each)",
                head, [decision_row(s) for s in all_stats])
    steps = ["decide (DB)", "publish", "announce"]
    kinds = [k for k in KIND_ORDER if any(k in s.by_kind for s in all_stats)]
    rows = [[s.label, f"{s.waiting:,}", str(s.slots)]
            + [_p50(s.by_step, k, 2) for k in steps] + [_p50(s.by_kind, k, 3) for k in kinds] for s in all_stats]
    print_table("   Where a decision's time goes, p50 ms: its steps (decide = lock … commit; publish = Celery send_task "
                "per job; announce = the queue-moved notice), then SQL round trips per statement kind",
                ["queue", "waiting", "free slots", *steps, *(f"sql: {k}" for k in kinds)], rows)


def _p50(values: dict[str, list[float]], key: str, digits: int) -> str:
    return fmt(ms(values[key], 50), digits) if key in values else "—"


def print_growth(all_stats: list[DecisionStats], label: str, small: int, large: int) -> dict[str, float]:
    """The 'does not grow with the queue' ratios: the same queue shape (``label``) at ``large`` vs ``small``."""
    out: dict[str, float] = {}
    print(f"\n   Growth with the queue length, {label}: {large:,} / {small:,} waiting jobs")
    for slots in sorted({s.slots for s in all_stats if s.label == label}):
        a, b = _find(all_stats, label, small, slots), _find(all_stats, label, large, slots)
        if a is None or b is None:
            continue
        r50 = ratio(ms(b.seconds, 50), ms(a.seconds, 50))
        rmean = ratio(statistics.fmean(b.seconds), statistics.fmean(a.seconds))
        out[f"{label}, {slots} free slots, p50"] = r50
        print(f"     {slots} free slot(s): decision p50 {ms(b.seconds, 50):.2f} / {ms(a.seconds, 50):.2f} ms = "
              f"{r50:.2f}x, mean {rmean:.2f}x")
    return out


def _find(all_stats: list[DecisionStats], label: str, waiting: int, slots: int) -> DecisionStats | None:
    return next((s for s in all_stats if s.label == label and s.waiting == waiting and s.slots == slots), None)


def print_plan(title: str, sql: str, plan: list[str], index: str | None) -> None:
    """A captured statement, its plan, and whether it reads ``index`` (None: say how it scans instead)."""
    from dispatch_decisions import sorts, uses_index

    print(f"\n   EXPLAIN ANALYZE, {title}:")
    print("     " + " ".join(sql.split())[:400])
    for line in plan:
        print("     | " + line)
    if index is None:
        scans = [line.strip().lstrip("-> ").split("  (")[0] for line in plan if "Scan" in line]
        removed = [line.strip() for line in plan if "Rows Removed by Filter" in line]
        print(f"     -> {'; '.join(scans)}{'; ' + removed[0] if removed else ''}")
        return
    sort = sorts(plan)
    print(f"     -> reads {index}: {'yes' if uses_index(plan, index) else 'NO'}"
          + (f"; sorts its rows ({sort})" if sort else "; no sort (index order)"))


# --------------------------------------------------------------------------- pickup
def print_pickup(title: str, client_s: list[float], db_s: dict[str, list[float]],
                 target_ms: float | None = None) -> dict:
    """POST → Processing (client) and the DB's view of the same pickup, p50 / p99 / max."""
    series = {"POST sent -> Processing event received": client_s, **db_s}
    rows = [[name, str(len(v)), fmt(ms(v, 50), 1), fmt(ms(v, 99), 1), fmt(max(v, default=math.nan) * 1000, 1)]
            for name, v in series.items()]
    print_table(title, ["measure", "n", "p50 ms", "p99 ms", "max ms"], rows)
    if target_ms is not None:
        judged = ("client (POST -> Processing)", "DB (created_at -> started_at)")  # the rest have no target
        verdicts = [f"{who} {'MET' if ms(v, 50) < target_ms else 'NOT MET'}"
                    for who, v in zip(judged, list(series.values())[:len(judged)], strict=True)]
        print(f"   target p50 < {target_ms:.0f} ms: {'; '.join(verdicts)}")
    return {name.strip(): {"p50": ms(v, 50), "p99": ms(v, 99)} for name, v in series.items()}


# --------------------------------------------------------------------------- fairness
@dataclass
class Fairness:
    """Per-owner completions in a window of the drain."""

    window: str
    completions: int
    seconds: float
    counts: dict[str, int]

    def figures(self) -> dict[str, float]:
        """max/min, mean, stdev, coefficient of variation, worst deviation from the mean, per-owner rate."""
        values = list(self.counts.values())
        mean = statistics.fmean(values)
        lo, hi = min(values), max(values)
        return {"owners": len(values), "mean": mean, "min": lo, "max": hi,
                "max_over_min": hi / lo if lo else math.inf, "stdev": statistics.pstdev(values),
                "cv": statistics.pstdev(values) / mean if mean else math.nan,
                "worst_dev": max(abs(v - mean) for v in values) / mean if mean else math.nan,
                "rate_mean": mean / self.seconds if self.seconds else math.nan,
                "rate_min": lo / self.seconds if self.seconds else math.nan,
                "rate_max": hi / self.seconds if self.seconds else math.nan}


def fairness_windows(done: list[tuple[str, datetime]], owners: list[str], per_owner: int,
                     first_n: int) -> list[Fairness]:
    """Windows of the drain (completions by finished_at): the first ``first_n``, and until the first owner is done."""
    windows = []
    if first_n:
        windows.append(_window(f"first {min(first_n, len(done)):,} completions", done[:first_n], owners))
    counts: dict[str, int] = {}
    for i, (owner, _) in enumerate(done):
        counts[owner] = counts.get(owner, 0) + 1
        if counts[owner] == per_owner and i + 1 >= len(owners):  # one job each: no window worth the name
            windows.append(_window(f"until the first owner was done ({i + 1:,} completions)", done[:i + 1], owners))
            break
    return windows


def _window(label: str, rows: list[tuple[str, datetime]], owners: list[str]) -> Fairness:
    counts = {o: 0 for o in owners}
    for owner, _ in rows:
        counts[owner] += 1
    seconds = (rows[-1][1] - rows[0][1]).total_seconds() if len(rows) > 1 else 0.0
    return Fairness(label, len(rows), seconds, counts)


def print_fairness(windows: list[Fairness], per_owner: int) -> list[dict]:
    """The fairness table, with what arrival order (one FIFO queue) would have given in the same window."""
    head = ["window", "owners", "completions/owner mean", "min", "max", "max/min", "stdev", "worst vs mean",
            "per-owner rate mean (min-max) jobs/s", "FIFO: owners served"]
    rows, out = [], []
    for w in windows:
        f = w.figures()
        fifo_owners = min(f["owners"], math.ceil(w.completions / per_owner))
        rows.append([w.window, str(f["owners"]), fmt(f["mean"], 1), str(f["min"]), str(f["max"]),
                     fmt(f["max_over_min"], 2), fmt(f["stdev"], 2), f"±{f['worst_dev'] * 100:.1f} %",
                     f"{f['rate_mean']:.3f} ({f['rate_min']:.3f}-{f['rate_max']:.3f})",
                     f"{fifo_owners} of {f['owners']}"])
        out.append({"window": w.window, **f, "fifo_owners_served": fifo_owners})
    print_table("3. Fairness over the drain (per-owner completions, seeded owners; jobs seeded owner by owner)",
                head, rows)
    print("   FIFO: a single arrival-order queue (plain Celery) finishes whole batches in turn; in the same window it "
          "would have served only that many owners (max/min = inf).")
    return out


# --------------------------------------------------------------------------- drain rate
def drain_rates(finished: list[datetime], total: int, window: int) -> list[tuple[int, int, float]]:
    """(waiting at the window's start, completions, jobs/s) per ``window`` completions of the drain."""
    out = []
    for start in range(0, len(finished) - 1, window):
        chunk = finished[start:start + window + 1]
        if len(chunk) <= window // 2:  # a short tail (the last few jobs before the stop) says little
            break
        seconds = (chunk[-1] - chunk[0]).total_seconds()
        out.append((total - start, len(chunk) - 1, (len(chunk) - 1) / seconds if seconds else math.nan))
    return out


def print_drain(rates: list[tuple[int, int, float]]) -> dict:
    """Drain throughput per window: the whole system's per-job cost at each backlog."""
    rows = [[f"{w:,}", str(n), fmt(r, 1)] for w, n, r in rates]
    print_table("4. Drain rate per window (2 worker slots, every job handed out by the dispatcher)",
                ["waiting at window start", "completions", "jobs/s"], rows)
    if len(rates) >= 2:
        first, last = rates[0][2], rates[-1][2]
        print(f"   last window / first window: {ratio(last, first):.2f}x "
              f"({rates[-1][0]:,} vs {rates[0][0]:,} waiting at the start)")
        return {"first_jobs_per_s": first, "last_jobs_per_s": last, "last_over_first": ratio(last, first)}
    return {}


# --------------------------------------------------------------------------- table helper
def print_table(title: str, head: list[str], rows: list[list[str]]) -> None:
    """A plain aligned table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
