"""One loop that runs each periodic duty when it is due, never behind busy workers, never twice at once."""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask

from app.extensions import db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Duty:
    """A periodic piece of work: its name, its period (seconds) and what it runs (inside an app context).

    A run whose result says ``more`` (it stopped at its time budget with work left) is due again at once:
    a long backlog drains in slices while the other duties keep their periods.
    """

    name: str
    every: float
    run: Callable[[], object]
    # Duties of one lane run one after another; each lane has its own thread, so a long purge slice never
    # delays a schedule's fire.
    lane: str = "main"


def duties(app: Flask) -> list[Duty]:
    """The clock's duties, from the app's settings."""
    from app.jobs.dispatch import dispatch_ready
    from app.jobs.sweeper import sweep
    from app.jobs.throughput import PRUNE_SECONDS, prune
    from app.retention.purge import purge
    from app.schedules.firing import tick as schedule_tick
    from app.webhooks.sender import send_due as send_webhooks

    cfg = app.config
    # One purge of a million expired jobs takes minutes: in budgeted slices, the sweep is never held up.
    budget = cfg["LONGRUN_PURGE_BUDGET_SECONDS"]
    return [
        # Submits and job ends dispatch at once; this catches due retries, new workers and resumed dispatch.
        Duty("dispatch", cfg["LONGRUN_DISPATCH_SECONDS"], dispatch_ready),
        Duty("sweep", cfg["LONGRUN_SWEEP_SECONDS"], sweep),
        Duty("purge", cfg["LONGRUN_PURGE_SECONDS"], lambda: purge(budget=budget)),
        # Jobs asked for later and schedules' slots: due ones within a tick (p99 fire lag < 1 s).
        Duty("schedules", cfg["LONGRUN_SCHEDULE_SECONDS"], schedule_tick, lane="schedules"),
        Duty("buckets", PRUNE_SECONDS, prune),  # minute buckets the throughput chart no longer shows
        # Completion webhooks: a slow endpoint holds this lane's threads only, never a schedule's fire.
        Duty("webhooks", cfg["LONGRUN_WEBHOOK_SECONDS"], send_webhooks, lane="webhooks"),
    ]


def lock_key(name: str) -> int:
    """A stable 63-bit advisory-lock key per duty (the same in every clock process)."""
    return int.from_bytes(hashlib.sha256(f"longrun:{name}".encode()).digest()[:8], "big") >> 1


@contextmanager
def exclusive(name: str) -> Iterator[bool]:
    """Whether this process may run duty ``name`` now: one clock at a time across machines (PostgreSQL lock).

    Two clocks do no harm either way (every duty locks the rows it touches), but they would do the work twice.
    SQLite has one writer at a time anyway, so there it always answers yes.
    """
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    key = lock_key(name)
    with db.engine.connect() as conn:
        mine = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield mine
        finally:
            if mine:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


def run_due(app: Flask, duty: Duty) -> bool:
    """Run ``duty`` once if no other clock is running it; whether it left work for an immediate next run.

    Failures are logged and retried next period.
    """
    with app.app_context():
        try:
            with exclusive(duty.name) as mine:
                return bool(getattr(duty.run(), "more", False)) if mine else False
        except Exception:
            log.exception("clock duty %s failed; retrying in %.0f s", duty.name, duty.every)
            return False
        finally:
            db.session.remove()


def run_clock(app: Flask, stop: threading.Event) -> None:
    """Run every duty on its period until ``stop`` is set, each lane in its own thread."""
    plan = duties(app)
    lanes: dict[str, list[Duty]] = {}
    for duty in plan:
        lanes.setdefault(duty.lane, []).append(duty)
    threads = [threading.Thread(target=run_lane, args=(app, stop, lane), name=f"clock-{name}", daemon=True)
               for name, lane in lanes.items()]
    for thread in threads:
        thread.start()
    log.info("clock started: %s", ", ".join(f"{d.name} every {d.every:g} s" for d in plan))
    for thread in threads:
        thread.join()
    log.info("clock stopped")


def run_lane(app: Flask, stop: threading.Event, plan: list[Duty]) -> None:
    """Run one lane's duties on their periods until ``stop`` is set."""
    next_due = {duty.name: 0.0 for duty in plan}
    while not stop.is_set():
        for duty in plan:
            if time.monotonic() >= next_due[duty.name] and not stop.is_set():
                more = run_due(app, duty)
                next_due[duty.name] = time.monotonic() + (0.0 if more else duty.every)
        stop.wait(max(0.0, min(next_due.values()) - time.monotonic()))
