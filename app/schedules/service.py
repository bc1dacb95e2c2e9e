"""What owners do to schedules: create, change, pause, resume, run now, delete — every input checked first."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.jobs.limits import Throttled
from app.jobs.models import Job, utcnow
from app.jobs.service import Submission, submit_job
from app.reports import get_report
from app.reports.params import ParamsInvalid, to_json_params
from app.reports.registry import UnknownReport
from app.schedules.cron import CronInvalid, CronSpec, compile_cron
from app.schedules.models import MISFIRE_POLICIES, SKIP, Schedule

FIELDS = frozenset({"report", "params", "cron", "timezone", "enabled", "misfire"})
DEFAULTS: dict[str, Any] = {"params": {}, "timezone": "UTC", "enabled": True, "misfire": SKIP}
RUNS_SHOWN = 10


@dataclass
class ScheduleInvalid(Exception):
    """Some fields cannot be accepted; ``errors`` has one ``{field, message}`` per problem."""

    errors: list[dict[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{e['field']}: {e['message']}" for e in self.errors)


def spec_of(schedule: Schedule, now: datetime | None = None) -> CronSpec:
    """The schedule's compiled expression (it was checked when stored)."""
    return compile_cron(schedule.cron, schedule.timezone, now or utcnow())


def _check_report(values: dict[str, Any], errors: list[dict[str, str]]) -> None:
    try:
        report = get_report(values["report"]) if isinstance(values["report"], str) else None
    except UnknownReport as exc:
        report = None
        errors.append({"field": "report", "message": str(exc)[:300]})
    else:
        if report is None:
            errors.append({"field": "report", "message": "must be the name of a report"})
    if report is not None:
        try:
            values["params"] = to_json_params(report.validate(values["params"]))
            values["report"] = report.name
        except ParamsInvalid as exc:
            errors.extend(exc.errors)


def _check_timing(values: dict[str, Any], now: datetime, errors: list[dict[str, str]]) -> None:
    try:
        spec = compile_cron(values["cron"], values["timezone"], now)
    except CronInvalid as exc:
        errors.append({"field": exc.field, "message": exc.message})
        return
    values["cron"] = spec.expression
    minimum = current_app.config["LONGRUN_SCHEDULE_MIN_INTERVAL_SECONDS"]
    shortest = spec.shortest_interval(now)
    if shortest is not None and shortest < minimum:
        errors.append({"field": "cron", "message": f"fires every {shortest:g} s at times; the shortest interval "
                                                   f"allowed is {minimum} s"})


def check(body: dict[str, Any], current: Schedule | None, now: datetime) -> dict[str, Any]:
    """The whole schedule ``body`` describes (over ``current``'s values for a change), or ``ScheduleInvalid``."""
    base = DEFAULTS if current is None else {k: getattr(current, k) for k in FIELDS}
    values = {**base, **body}
    errors: list[dict[str, str]] = []
    for name in ("report", "cron"):
        if name not in values:
            errors.append({"field": name, "message": "is required"})
    if not isinstance(values["enabled"], bool):
        errors.append({"field": "enabled", "message": "must be true or false"})
    if values["misfire"] not in MISFIRE_POLICIES:
        errors.append({"field": "misfire", "message": f"must be one of {', '.join(MISFIRE_POLICIES)}"})
    if "report" in values:
        _check_report(values, errors)
    if "cron" in values:
        _check_timing(values, now, errors)
    if errors:
        raise ScheduleInvalid(errors)
    return values


def _check_cap(owner: str) -> None:
    """``Throttled`` past the owner's cap; an advisory lock makes count-then-insert atomic on PostgreSQL."""
    cap = current_app.config["LONGRUN_MAX_SCHEDULES_PER_OWNER"]
    if cap <= 0:
        return
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("schedules:" + owner))))
    count = db.session.execute(sa.select(sa.func.count()).where(Schedule.owner == owner)).scalar_one()
    if count >= cap:
        db.session.rollback()
        raise Throttled(f"You already have {count} schedules (the limit is {cap}); delete one first.", 60)


def create_schedule(owner: str, body: dict[str, Any]) -> Schedule:
    """Check and store a new schedule; its first slot is the first fire time from now."""
    now = utcnow()
    values = check(body, None, now)
    _check_cap(owner)
    schedule = Schedule(id=uuid.uuid4(), owner=owner, created_at=now, updated_at=now, **values)
    schedule.next_fire_at = spec_of(schedule, now).next_after(now)
    db.session.add(schedule)
    db.session.commit()
    return schedule


def update_schedule(schedule: Schedule, body: dict[str, Any]) -> Schedule:
    """Change some fields; a new expression, zone or a resume starts counting slots from now."""
    now = utcnow()
    locked = _lock(schedule)
    values = check(body, locked, now)
    retime = any(values[k] != getattr(locked, k) for k in ("cron", "timezone")) or (values["enabled"] and not locked.enabled)
    for name, value in values.items():
        setattr(locked, name, value)
    if retime:
        locked.next_fire_at = spec_of(locked, now).next_after(now)
    db.session.commit()
    return locked


def set_enabled(schedule: Schedule, enabled: bool) -> Schedule:
    """Pause (slots pass without runs) or resume (the next slot from now on)."""
    return update_schedule(schedule, {"enabled": enabled})


def delete_schedule(schedule: Schedule) -> None:
    """Remove the schedule; its jobs stay, as ordinary jobs (their ``schedule_id`` becomes null)."""
    locked = _lock(schedule)
    db.session.delete(locked)
    db.session.commit()


def run_now(schedule: Schedule) -> Submission:
    """A run outside the cron: an ordinary job of the schedule, its slot the time of asking (owner limits apply)."""
    report = get_report(schedule.report)
    submission = submit_job(schedule.owner, report.name, schedule.params, api_version="v3",
                            allowance=schedule.priority, run_at=utcnow(), schedule_id=schedule.id)
    locked = _lock(schedule)
    locked.last_job_id = submission.job.id
    db.session.commit()
    return submission


def _lock(schedule: Schedule) -> Schedule:
    locked = db.session.execute(sa.select(Schedule).where(Schedule.id == schedule.id).with_for_update()
                                .execution_options(populate_existing=True)).scalar_one_or_none()
    if locked is None:
        raise LookupError(str(schedule.id))
    return locked


def find_schedule(owner: str | None, schedule_id: str) -> Schedule | None:
    """The owner's schedule (``None``: anyone's); None for unknown, malformed and others' ids alike."""
    try:
        key = uuid.UUID(str(schedule_id))
    except ValueError:
        return None
    schedule = db.session.get(Schedule, key)
    return schedule if schedule is not None and owner in (None, schedule.owner) else None


def list_schedules(owner: str) -> list[Schedule]:
    """The owner's schedules, newest first (at most the per-owner cap)."""
    cap = max(current_app.config["LONGRUN_MAX_SCHEDULES_PER_OWNER"], 100)
    return list(db.session.execute(sa.select(Schedule).where(Schedule.owner == owner)
                                   .order_by(Schedule.created_at.desc(), Schedule.id).limit(cap)).scalars())


def runs(schedule_id: uuid.UUID, limit: int = RUNS_SHOWN) -> list[Job]:
    """The schedule's newest runs (one per slot), from the unique (schedule, slot) index."""
    return list(db.session.execute(sa.select(Job).where(Job.schedule_id == schedule_id)
                                   .order_by(Job.scheduled_for.desc()).limit(limit)).scalars())


def last_runs(schedules: list[Schedule]) -> dict[uuid.UUID, Job]:
    """Each schedule's newest run that still exists, in one query."""
    ids = [s.last_job_id for s in schedules if s.last_job_id]
    if not ids:
        return {}
    return {job.schedule_id: job for job in db.session.execute(sa.select(Job).where(Job.id.in_(ids))).scalars()
            if job.schedule_id}


def overdue(schedule: Schedule, now: datetime) -> bool:
    """Enabled and its slot passed more than the misfire grace ago: no clock is firing it."""
    grace = timedelta(seconds=current_app.config["LONGRUN_MISFIRE_GRACE_SECONDS"])
    return bool(schedule.enabled and schedule.next_fire_at and schedule.next_fire_at < now - grace)
