"""The clock's schedule duty: enqueue jobs whose ``run_at`` has come, and fire due schedules, once per slot.

Both lookups read a partial index from its start (due Scheduled jobs by time; enabled schedules by next fire
time), so a tick costs the same whether 10 or 100,000 schedules wait for later slots. Schedules are taken
``FOR UPDATE SKIP LOCKED`` and their ``next_fire_at`` moves on in the transaction that creates their jobs:
two clocks never pick the same slot, and the unique ``(schedule_id, scheduled_for)`` index refuses a second
job for a slot whatever happens (a fire whose slot already has a job creates nothing).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from app.channels import Namespace, publish_events
from app.extensions import db
from app.jobs import dispatch
from app.jobs.lifecycle import event_message, transition
from app.jobs.models import Job, JobEvent, utcnow
from app.jobs.service import build_job
from app.jobs.states import JobState
from app.reports import get_report
from app.reports.params import ParamsInvalid, to_json_params
from app.reports.registry import UnknownReport
from app.schedules.cron import CronInvalid
from app.schedules.misfire import FirePlan, plan_fire
from app.schedules.models import Schedule
from app.schedules.service import spec_of

log = logging.getLogger(__name__)

# Rows per transaction: a burst of due slots drains in several short transactions, the first within the tick.
BATCH = 200


@dataclass
class TickReport:
    """What one tick did; ``more`` when a batch was full (the clock comes back at once)."""

    promoted: int = 0
    fired: int = 0
    missed: int = 0
    more: bool = False


def tick() -> TickReport:
    """One run of the clock's schedule duty."""
    report = TickReport()
    report.promoted, more_jobs = promote_due()
    report.fired, report.missed, more_fires = fire_due()
    report.more = more_jobs or more_fires
    if report.promoted or report.fired:
        dispatch.dispatch_quietly()
    return report


def promote_due(now: datetime | None = None, batch: int = BATCH) -> tuple[int, bool]:
    """Move Scheduled jobs whose time has come to Enqueued (waiting for a worker slot); (how many, more left)."""
    now = now or utcnow()
    due = sa.and_(Job.state == JobState.SCHEDULED.value, Job.scheduled_for <= now)
    ids = list(db.session.execute(sa.select(Job.id).where(due).order_by(Job.scheduled_for).limit(batch)).scalars())
    db.session.rollback()
    promoted = 0
    for job_id in ids:
        # Locked and re-checked one by one: a job cancelled meanwhile, or taken by another clock, is left alone.
        job = db.session.execute(sa.select(Job).where(Job.id == job_id, due).with_for_update(of=Job, skip_locked=True)
                                 .execution_options(populate_existing=True)).scalar_one_or_none()
        if job is None:
            db.session.rollback()
            continue
        late = (utcnow() - job.scheduled_for).total_seconds()
        transition(job.id, JobState.ENQUEUED, f"Due at {job.scheduled_for.isoformat()}: enqueued ({late:.1f} s later)",
                   job=job, update=_waiting)
        promoted += 1
    return promoted, len(ids) == batch


def _waiting(job: Job) -> None:
    job.dispatched_at = None  # waiting in its owner's line: the dispatcher hands it out


def fire_due(now: datetime | None = None, batch: int = BATCH) -> tuple[int, int, bool]:
    """Create the jobs of due schedules and move each to its next slot; (jobs created, slots missed, more left)."""
    now = now or utcnow()
    due = db.session.execute(due_schedules(now, batch)).scalars().all()
    if not due:
        db.session.rollback()
        return 0, 0, False
    plans = {s.id: _plan(s, now) for s in due}
    created = _fire_all(due, plans)
    missed = sum(1 for plan in plans.values() if plan and plan.missed)
    messages = [event_message(job, event) for job, event in created]
    db.session.commit()
    cfg = current_app.config
    publish_events(cfg["REDIS_URL"], Namespace.of(cfg), messages)
    return len(created), missed, len(due) == batch


def _fire_all(due: list[Schedule], plans: dict) -> list[tuple[Job, JobEvent]]:
    """Move each schedule to its next slot and create the jobs of the slots that have none yet."""
    taken = _slots_with_jobs([(s.id, p.slot) for s in due if (p := plans[s.id]) and p.slot])
    created = []
    for schedule in due:
        plan = plans[schedule.id]
        schedule.next_fire_at = plan.next_fire_at if plan else None
        if plan is None or plan.slot is None or (schedule.id, plan.slot) in taken:
            continue
        made = _fire(schedule, plan)
        if made:
            created.append(made)
    return created


def due_schedules(now: datetime, batch: int = BATCH) -> sa.Select:
    """Enabled schedules whose slot has come, soonest first, locked (others' locked rows skipped).

    ``WHERE enabled`` exactly as the partial index says it: PostgreSQL does not match ``enabled IS true``
    to that index (tests/schedules/test_exactly_once.py checks the plan).
    """
    return (sa.select(Schedule).where(Schedule.enabled, Schedule.next_fire_at <= now)
            .order_by(Schedule.next_fire_at).limit(batch).with_for_update(skip_locked=True)
            .execution_options(populate_existing=True))


def _plan(schedule: Schedule, now: datetime) -> FirePlan | None:
    """The schedule's fire plan; None (and no more slots) when its expression or zone no longer works."""
    grace = timedelta(seconds=current_app.config["LONGRUN_MISFIRE_GRACE_SECONDS"])
    try:
        plan = plan_fire(spec_of(schedule, now), schedule.next_fire_at, now, schedule.misfire, grace)
    except CronInvalid as exc:
        schedule.last_error = f"Stopped: {exc.field} {exc.message}"
        return None
    if plan.missed:
        what = "ran the latest one once" if plan.slot else "skipped them"
        schedule.last_error = f"Missed slots from {schedule.next_fire_at.isoformat()} while no clock ran; {what} " \
                              f"(misfire: {schedule.misfire})"
    return plan


def _slots_with_jobs(pairs: list[tuple[object, datetime]]) -> set[tuple[object, datetime]]:
    """Which (schedule, slot) pairs already have their job (a crash between fire and commit cannot leave one)."""
    if not pairs:
        return set()
    rows = db.session.execute(sa.select(Job.schedule_id, Job.scheduled_for)
                              .where(sa.tuple_(Job.schedule_id, Job.scheduled_for).in_(pairs))).all()
    return {(schedule_id, slot) for schedule_id, slot in rows}


def _fire(schedule: Schedule, plan: FirePlan) -> tuple[Job, JobEvent] | None:
    """One ordinary job for the schedule's slot (its parameters checked again: the report may have changed)."""
    try:
        report = get_report(schedule.report)
        params = to_json_params(report.validate(schedule.params))
    except (UnknownReport, ParamsInvalid) as exc:
        schedule.last_error = f"Slot {plan.slot.isoformat()} not run: {exc}"[:1000]
        log.warning("schedule %s: slot %s not run: %s", schedule.id, plan.slot, exc)
        return None
    job, event = build_job(schedule.owner, report, params, priority=schedule.priority, api_version="v3",
                           scheduled_for=plan.slot, schedule_id=schedule.id)
    schedule.last_fired_at = plan.slot
    schedule.last_job_id = job.id
    if not plan.missed:
        schedule.last_error = None
    return job, event
