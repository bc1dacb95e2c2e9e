"""Fair dispatch: PostgreSQL decides which waiting job goes to Celery next, and only while a worker slot is free.

Jobs wait in PostgreSQL, not in the Celery queue. Whenever a slot may have freed (a job submitted or ended, a
worker joined, a pause lifted — and every clock tick as a safety net) ``dispatch_ready`` hands out as many jobs
as there are free slots: owners take turns (the one served longest ago first, each at most
``LONGRUN_MAX_RUNNING_PER_OWNER`` in flight), and within an owner the highest priority, then the oldest, goes
first. One transaction-scoped advisory lock makes the decision one at a time across every process and machine;
each step is an index lookup, so its cost does not grow with the number of waiting jobs.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from app.channels import Namespace, publish_queue_moved
from app.extensions import db
from app.jobs import capacity, slots
from app.jobs.models import Job, utcnow
from app.jobs.slots import ALL_REPORTS, DispatchPause, OwnerQueue
from app.jobs.states import JobState
from app.telemetry.tracing import continued_trace

log = logging.getLogger(__name__)

RUN_JOB_TASK = "longrun.run_job"
# pg_advisory_xact_lock key of the dispatch decision ("longrun:dispatch").
DISPATCH_LOCK = 0x6C6F6E6772756E01
# Owners looked at per pass: enough to fill every free slot even when many owners are at their cap.
OWNERS_PER_PASS = 200
WAITING_STATES = (JobState.ENQUEUED.value, JobState.RETRYING.value)


def new_task_id() -> str:
    """A fresh Celery task id; only the message carrying the job's current id may run it."""
    return str(uuid.uuid4())


def publish(job: Job) -> bool:
    """Send the job's current task id to the queue; False (logged) if the broker refused."""
    report_limit = _report_time_limit(job.report)
    try:
        with continued_trace(job.trace_parent):
            current_app.extensions["celery"].send_task(
            RUN_JOB_TASK,
                args=[str(job.id)],
                task_id=job.celery_task_id,
                queue=current_app.config["LONGRUN_QUEUE"],
                soft_time_limit=report_limit,
                time_limit=report_limit + 60 if report_limit else None,
            )
        return True
    except Exception as exc:
        log.warning("could not publish job %s: %s", job.id, exc)
        return False


def _report_time_limit(name: str) -> int | None:
    from app.reports import get_report

    try:
        return get_report(name).time_limit
    except KeyError:
        return None


def mark_undispatched(job: Job) -> None:
    """Send a job whose message never reached the broker (or was lost there) back to waiting."""
    try:
        job.dispatched_at = None
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.warning("could not mark job %s undispatched", job.id, exc_info=True)


@dataclass
class _Turn:
    """One owner's row during a dispatch decision, with the jobs given to it so far."""

    row: OwnerQueue
    given: int = 0

    def may_take(self, cap: int) -> bool:
        """Whether this owner may get one more job in this decision: it has one waiting, and room under its cap."""
        return self.row.waiting > self.given and not 0 < cap <= self.row.inflight + self.given


def dispatch_ready() -> list[Job]:
    """Hand waiting jobs to Celery while worker slots are free, in fair order; return the jobs published."""
    try:
        chosen = _choose()
    except Exception:
        db.session.rollback()
        raise
    published = []
    for job in chosen:
        if publish(job):
            published.append(job)
        else:
            mark_undispatched(job)
    if published:
        announce_queue_moved()
    return published


def announce_queue_moved() -> None:
    """Places in line changed: web processes push the new ones to the sockets showing waiting jobs."""
    cfg = current_app.config
    publish_queue_moved(cfg["REDIS_URL"], Namespace.of(cfg))


def _choose() -> list[Job]:
    """Mark the next jobs dispatched and commit; the caller publishes them."""
    # Without the lock, and outside any transaction, first. A job that starts waiting after this is handed out
    # by its own submit's call, or by the clock's next tick.
    free, any_pause = _precheck()
    if free <= 0:
        return []
    if db.engine.dialect.name == "postgresql":
        db.session.execute(_LOCK)
    # Under the lock from here on: what another process just decided is committed and seen.
    paused = slots.paused_scopes() if any_pause else {}
    if ALL_REPORTS in paused:
        db.session.rollback()
        return []
    cap = current_app.config["LONGRUN_MAX_RUNNING_PER_OWNER"]
    now = utcnow()
    turns, free = _owners_in_turn(cap)  # free slots again: another process may just have used some
    chosen: list[Job] = []
    while len(chosen) < free and turns:
        for turn in list(turns):
            job = _dispatch_next(turn.row.owner, now, set(paused)) if turn.may_take(cap) else None
            if job is None:
                turns.remove(turn)
                continue
            turn.given += 1
            # Strictly increasing within one decision: the owner served first goes to the back first. Written
            # with the owner's counts, in their one upsert (no UPDATE of its own).
            slots.mark_served(turn.row.owner, now + timedelta(microseconds=len(chosen)))
            chosen.append(job)
            if len(chosen) >= free:
                break
    db.session.commit()
    return chosen


# The hot path's statements, built once: constructing a statement and its cache key costs more CPU than
# running it. What changes per call is a bound parameter.
_IN_FLIGHT = (sa.select(sa.func.coalesce(sa.func.sum(OwnerQueue.inflight), 0)).where(OwnerQueue.inflight > 0)
              .scalar_subquery())
_FREE = capacity.slots_expression() - _IN_FLIGHT
# Nobody waiting: 0, so most calls (a job ended, nothing waits) stop at this one statement; and whether any
# pause exists, so that the pauses are read only when there are some.
_PRECHECK = sa.select(sa.case((sa.exists().where(OwnerQueue.waiting > 0), _FREE), else_=0),
                      sa.exists().where(DispatchPause.scope.is_not(None)))
_LOCK = sa.select(sa.func.pg_advisory_xact_lock(DISPATCH_LOCK))


def _precheck() -> tuple[int, bool]:
    """Free slots if anyone waits (else 0), and whether anything is paused: one statement in autocommit, so it
    costs no BEGIN and ROLLBACK of its own (its caller has committed what it did)."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        free, any_pause = conn.execute(_PRECHECK, capacity.slots_params()).one()
    return int(free), bool(any_pause)


def in_flight_expression() -> sa.ScalarSelect:
    """Jobs handed to Celery and not finished, every owner (``ix_owner_queues_busy``: one entry per busy owner)."""
    return _IN_FLIGHT


def in_flight() -> int:
    """Jobs handed to Celery and not finished, every owner."""
    return int(db.session.execute(sa.select(_IN_FLIGHT)).scalar_one())


@lru_cache(maxsize=8)
def owners_in_turn_query(cap: int) -> sa.Select:
    """Owners with waiting jobs and room under their cap, the one served longest ago first (``ix_owner_queues_turn``
    gives this order, so no waiting owner is sorted)."""
    query = sa.select(OwnerQueue).where(OwnerQueue.waiting > 0)
    if cap > 0:
        query = query.where(OwnerQueue.inflight < cap)
    return query.order_by(OwnerQueue.served_at.asc().nulls_first(), OwnerQueue.owner).limit(OWNERS_PER_PASS)


@lru_cache(maxsize=8)
def _owners_and_free_query(cap: int) -> sa.Select:
    """``owners_in_turn_query`` with the free slots on every row (computed once: an InitPlan)."""
    return owners_in_turn_query(cap).add_columns(_FREE.label("free")).execution_options(populate_existing=True)


def _owners_in_turn(cap: int) -> tuple[list[_Turn], int]:
    """The owners whose turn it is, as decision state, and the free slots (0 when no owner may take a job)."""
    rows = db.session.execute(_owners_and_free_query(cap), capacity.slots_params()).all()
    return [_Turn(row[0]) for row in rows], int(rows[0][1]) if rows else 0


@lru_cache(maxsize=2)
def _dispatch_next_statement(skips_paused: bool) -> sa.Update:
    """Mark an owner's best waiting job that may start now dispatched, and return it: one statement, no flush
    (parameters ``b_owner``, ``b_now``, ``b_task_id`` and, if any, ``b_paused``: a column's own name is
    reserved in an UPDATE)."""
    best = (
        sa.select(Job.id)
        .where(Job.owner == sa.bindparam("b_owner"), Job.dispatched_at.is_(None), Job.state.in_(WAITING_STATES),
               sa.or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= sa.bindparam("b_now")))
        .order_by(Job.priority.desc(), Job.created_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if skips_paused:
        best = best.where(Job.report.not_in(sa.bindparam("b_paused", expanding=True)))
    return (
        sa.update(Job).where(Job.id == best.scalar_subquery())
        .values(dispatched_at=sa.bindparam("b_now"), celery_task_id=sa.bindparam("b_task_id"),
                updated_at=sa.bindparam("b_now"))
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )


def _dispatch_next(owner: str, now: datetime, paused: set[str]) -> Job | None:
    """Dispatch the owner's best waiting job that may start now (highest priority, then oldest), if it has one."""
    params: dict[str, object] = {"b_owner": owner, "b_now": now, "b_task_id": new_task_id()}
    if paused:
        params["b_paused"] = sorted(paused)
    job = db.session.execute(_dispatch_next_statement(bool(paused)), params).scalar_one_or_none()
    if job is not None:
        # Not written through the unit of work, so the flush hook cannot see this move: count it here.
        slots.count_move(db.session(), owner, slots.slot_class(job.state, None), slots.slot_class(job.state, now))
        if "result" in sa.inspect(job).unloaded:
            # RETURNING loads no relationship. A waiting job has no result (only a success writes one, and a
            # requeue deletes it): say so, rather than have the 202's JSON look it up.
            set_committed_value(job, "result", None)
    return job


def dispatch_quietly() -> None:
    """``dispatch_ready`` for callers whose own work is done: a failure is logged, the clock tries again."""
    try:
        dispatch_ready()
    except Exception:
        log.warning("dispatch failed; the clock will retry", exc_info=True)
