"""The dispatcher's own cost, measured in this process: ``dispatch_ready()`` decisions timed at several queue
lengths, the SQL each one runs, and the plans of its owner pick and next-job lookup.

Each queue shape lives in a database of its own, with its own Flask app (engine) in this process, and the
decisions are interleaved — one on each queue in turn — so a load change on the shared machine hits every queue
alike and the ratios between them hold. It runs the real ``app.jobs.dispatch.dispatch_ready`` while no worker or
clock is running; worker capacity comes from a row announced with ``capacity.beat_worker`` (what a worker does),
so nothing else dispatches meanwhile. After each decision the jobs it handed out are put back in line
(``dispatched_at = NULL``, as the sweep does), so every decision sees the same queue length. Their Celery
messages stay in the broker: the caller flushes its Redis DB before any worker starts.
"""
from __future__ import annotations

import functools
import re
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg2
import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from app.jobs import capacity, dispatch, position
from app.jobs.lifecycle import lock_job
from app.jobs.models import Job
from app.jobs.slots import OwnerQueue

PROBE_WORKER = "bench-dispatch-probe"
# What each statement of a decision is, by its text (the order matters: first match wins).
KINDS = (
    ("lock", re.compile(r"pg_advisory_xact_lock")),
    # The owner pick carries the free slots as a column: named by its ORDER BY before the in-flight sum.
    ("owner pick", re.compile(r"FROM owner_queues .*ORDER BY", re.S)),
    # The pre-check: free slots (worker capacity minus jobs in flight) and whether anything is paused, named by
    # its owner_queues part.
    ("in flight", re.compile(r"sum\(owner_queues\.inflight\)")),
    ("pauses", re.compile(r"FROM dispatch_pauses")),
    ("capacity", re.compile(r"FROM worker_slots")),
    # The next job is picked and marked dispatched by one UPDATE ... WHERE id = (SELECT ... SKIP LOCKED).
    ("next job", re.compile(r"FROM jobs .*SKIP LOCKED", re.S)),
    ("job update", re.compile(r"^UPDATE jobs")),
    ("owner rows", re.compile(r"^(INSERT INTO|UPDATE) owner_queues")),
)


def kind_of(statement: str) -> str:
    """The name of a decision's statement (``other`` if unknown)."""
    return next((name for name, pattern in KINDS if pattern.search(statement)), "other")


@dataclass
class Statement:
    """One statement sent to PostgreSQL while the log was armed."""

    sql: str
    params: object
    seconds: float

    @property
    def kind(self) -> str:
        """What it is for (see ``KINDS``)."""
        return kind_of(self.sql)


class StatementLog:
    """Records every statement the app's engine executes while armed (text, parameters, round-trip seconds)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.armed = False
        self.statements: list[Statement] = []
        self._started: list[float] = []
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, _conn: object, _cursor: object, statement: str, params: object, *_: object) -> None:
        if self.armed:
            self._started.append(time.perf_counter())

    def _after(self, _conn: object, _cursor: object, statement: str, params: object, *_: object) -> None:
        if self.armed and self._started:
            self.statements.append(Statement(statement, params, time.perf_counter() - self._started.pop()))

    @contextmanager
    def recording(self) -> Iterator[list[Statement]]:
        """Record the statements of one block; yields the list they land in."""
        self.statements, self._started, self.armed = [], [], True
        try:
            yield self.statements
        finally:
            self.armed = False


class StepClock:
    """Time spent in the steps of ``dispatch_ready``: the PostgreSQL decision, the publishes, the queue-moved notice.

    Wraps the dispatch module's own functions (``dispatch_ready`` looks them up there at each call).
    """

    STEPS = (("decide (DB)", "_choose"), ("publish", "publish"), ("announce", "announce_queue_moved"))

    def __init__(self) -> None:
        self.current: dict[str, float] | None = None
        for step, attr in self.STEPS:
            setattr(dispatch, attr, self._timed(step, getattr(dispatch, attr)))

    def _timed(self, step: str, fn: Callable[..., object]) -> Callable[..., object]:
        @functools.wraps(fn)
        def timed(*args: object, **kwargs: object) -> object:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.current is not None:
                    self.current[step] = self.current.get(step, 0.0) + time.perf_counter() - t0
        return timed

    @contextmanager
    def recording(self) -> Iterator[dict[str, float]]:
        """Seconds per step within one block."""
        self.current = {}
        try:
            yield self.current
        finally:
            self.current = None


STEP_CLOCK: StepClock | None = None


def step_clock() -> StepClock:
    """The one StepClock (installed on first use)."""
    global STEP_CLOCK
    if STEP_CLOCK is None:
        STEP_CLOCK = StepClock()
    return STEP_CLOCK


@dataclass
class DecisionStats:
    """Timed decisions at one queue length and slot count."""

    label: str
    waiting: int
    slots: int
    seconds: list[float] = field(default_factory=list)
    handed_out: list[int] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    sql_seconds: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    by_step: dict[str, list[float]] = field(default_factory=dict)

    def add(self, seconds: float, jobs: int, statements: list[Statement], steps: dict[str, float]) -> None:
        """Record one decision."""
        self.seconds.append(seconds)
        for step, secs in steps.items():
            self.by_step.setdefault(step, []).append(secs)
        self.handed_out.append(jobs)
        self.statements.append(len(statements))
        self.sql_seconds.append(sum(s.seconds for s in statements))
        per_kind: dict[str, float] = {}
        for s in statements:
            per_kind[s.kind] = per_kind.get(s.kind, 0.0) + s.seconds
        for kind, secs in per_kind.items():
            self.by_kind.setdefault(kind, []).append(secs)

    def jobs_per_decision(self) -> float:
        """Mean jobs handed out per decision."""
        return statistics.fmean(self.handed_out) if self.handed_out else 0.0


def waiting_jobs() -> int:
    """Jobs waiting now, from the owners' lines (what the dispatcher sees)."""
    return int(db.session.execute(sa.select(sa.func.coalesce(sa.func.sum(OwnerQueue.waiting), 0))).scalar_one())


def give_back(job_ids: list[uuid.UUID]) -> None:
    """Put handed-out jobs back in line, first in their owners' lines again (as the sweep does, in one commit)."""
    for job_id in job_ids:
        # Reloaded under its lock first: the owners' counts (app/jobs/slots.py) compare the loaded value with
        # the new one, and a job expired by an earlier commit or rollback has none loaded.
        lock_job(job_id).dispatched_at = None
    db.session.commit()


@dataclass
class Queue:
    """One database holding one queue shape, with its own app (engine) and statement log."""

    label: str
    db_url: str
    app: Flask
    log: StatementLog


def decide(queue: Queue, stats: DecisionStats, slots: int) -> None:
    """One timed decision on ``queue`` with ``slots`` worker slots announced; its jobs go back in line."""
    with queue.app.app_context():
        try:
            # Announced before every decision (untimed): a slow round stays within WORKER_FRESH_SECONDS.
            capacity.beat_worker(PROBE_WORKER, slots)
            with queue.log.recording() as statements, step_clock().recording() as steps:
                t0 = time.perf_counter()
                handed = dispatch.dispatch_ready()
                elapsed = time.perf_counter() - t0
            stats.add(elapsed, len(handed), statements, steps)
            give_back([job.id for job in handed])
        finally:
            db.session.remove()


def time_decisions(queues: list[Queue], slots: int, reps: int) -> list[DecisionStats]:
    """``reps`` decisions per queue with ``slots`` free slots, one queue after the other in each round."""
    stats = [_stats_for(q, slots) for q in queues]
    try:
        for _ in range(reps):
            for q, st in zip(queues, stats, strict=True):
                decide(q, st, slots)
    finally:
        for q in queues:
            _forget(q)
    return stats


def time_full_decisions(queues: list[Queue], label_suffix: str, reps: int) -> list[DecisionStats]:
    """Decisions when every slot is taken: what each submit and each job end pays under a backlog."""
    stats = [_stats_for(q, 0, label_suffix) for q in queues]
    taken = {q.db_url: _take_one(q) for q in queues}  # one slot announced, and it is in flight
    try:
        for _ in range(reps):
            for q, st in zip(queues, stats, strict=True):
                decide(q, st, 1)
    finally:
        for q in queues:
            with q.app.app_context():
                give_back(taken[q.db_url])
                db.session.remove()
            _forget(q)
    return stats


def _stats_for(queue: Queue, slots: int, suffix: str = "") -> DecisionStats:
    with queue.app.app_context():
        try:
            return DecisionStats(queue.label + suffix, waiting_jobs(), slots)
        finally:
            db.session.remove()


def _take_one(queue: Queue) -> list[uuid.UUID]:
    with queue.app.app_context():
        try:
            capacity.beat_worker(PROBE_WORKER, 1)
            return [job.id for job in dispatch.dispatch_ready()]
        finally:
            db.session.remove()


def _forget(queue: Queue) -> None:
    with queue.app.app_context():
        try:
            capacity.forget_worker(PROBE_WORKER)
        finally:
            db.session.remove()


def time_queue_place(queues: list[Queue], reps: int) -> list[tuple[int, int, list[float]]]:
    """Per queue: waiting jobs, the newest one's position, and the time of each ``position.queue_place`` for it."""
    out = [(_stats_for(q, 0).waiting, 0, []) for q in queues]
    for _ in range(reps):
        for i, q in enumerate(queues):
            with q.app.app_context():
                try:
                    capacity.beat_worker(PROBE_WORKER, 2)  # a predicted start needs worker capacity
                    out[i] = (out[i][0], *_place_once(out[i][2]))
                finally:
                    db.session.remove()
    for q in queues:
        _forget(q)
    return out


def _place_once(times: list[float]) -> tuple[int, list[float]]:
    newest = db.session.execute(sa.select(Job).where(*position.WAITING_ROWS)
                                .order_by(Job.created_at.desc()).limit(1)).scalar_one_or_none()
    if newest is None:
        return 0, times
    t0 = time.perf_counter()
    place = position.queue_place(newest)
    times.append(time.perf_counter() - t0)
    return (place.position if place else 0), times


def capture_decision(queue: Queue, slots: int) -> list[Statement]:
    """The statements of one decision handing out ``slots`` jobs (given back afterwards)."""
    with queue.app.app_context():
        capacity.beat_worker(PROBE_WORKER, slots)
        try:
            with queue.log.recording() as statements:
                handed = dispatch.dispatch_ready()
            give_back([job.id for job in handed])
        finally:
            capacity.forget_worker(PROBE_WORKER)
            db.session.remove()
    return list(statements)


def explain(db_url: str, statement: Statement) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of a captured statement, in a transaction rolled back (it may lock rows).

    Run twice on one connection and the second plan kept: a pooled connection has its catalog caches warm, and
    the first planning of a query on a fresh connection costs several times more.
    """
    conn = psycopg2.connect(db_url)
    try:
        lines: list[str] = []
        for _ in range(2):
            with conn.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.params)
                lines = [row[0] for row in cur.fetchall()]
            conn.rollback()
        return lines
    finally:
        conn.close()


def uses_index(plan: list[str], index: str) -> bool:
    """Whether the plan reads ``index`` (index scan, index-only scan or bitmap index scan)."""
    return any(index in line and "Index" in line for line in plan)


def sorts(plan: list[str]) -> str | None:
    """The plan's sort line ("Sort Method: …") if it sorts rows instead of reading them in index order."""
    return next((line.strip() for line in plan if "Sort Method" in line), None)
