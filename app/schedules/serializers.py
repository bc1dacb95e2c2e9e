"""JSON shapes of schedules: one builder for the API, used by every schedule endpoint."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import url_for

from app.jobs.models import Job, utcnow
from app.schedules.cron import CronSpec
from app.schedules.models import Schedule
from app.schedules.service import spec_of

UPCOMING = 5


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def fire_times(spec: CronSpec, after: datetime, count: int = UPCOMING) -> list[dict[str, str]]:
    """The next ``count`` fire times, each in the schedule's zone and in UTC."""
    return [{"local": t.astimezone(spec.tz).isoformat(), "utc": t.isoformat()} for t in spec.upcoming(after, count)]


def run_json(job: Job) -> dict[str, Any]:
    """One run of a schedule: its job's id, slot and state."""
    return {"job_id": str(job.id), "scheduled_for": _iso(job.scheduled_for), "state": job.state,
            "created_at": _iso(job.created_at), "finished_at": _iso(job.finished_at),
            "links": {"job": url_for("api.get_job", job_id=str(job.id))}}


def schedule_links(schedule: Schedule) -> dict[str, str]:
    """What can be done to the schedule now."""
    sid = str(schedule.id)
    links = {"self": url_for("schedules.get_schedule", schedule_id=sid),
             "run": url_for("schedules.run_schedule", schedule_id=sid)}
    toggle = "schedules.pause_schedule" if schedule.enabled else "schedules.resume_schedule"
    links["pause" if schedule.enabled else "resume"] = url_for(toggle, schedule_id=sid)
    return links


def schedule_json(schedule: Schedule, *, runs: list[Job] | None = None, last_run: Job | None = None,
                  operator: bool = False) -> dict[str, Any]:
    """A schedule as the API shows it; ``runs`` (newest first) for single-schedule views."""
    spec = spec_of(schedule)
    data: dict[str, Any] = {
        "id": str(schedule.id), "report": schedule.report, "params": schedule.params, "cron": schedule.cron,
        "timezone": schedule.timezone, "enabled": schedule.enabled, "misfire": schedule.misfire,
        "priority": schedule.priority, "description": spec.describe(),
        "next_fire_at": _iso(schedule.next_fire_at) if schedule.enabled else None,
        "next_fires": fire_times(spec, utcnow()) if schedule.enabled else [],
        "last_fired_at": _iso(schedule.last_fired_at), "last_error": schedule.last_error,
        "last_run": run_json(last_run) if last_run is not None else None,
        "created_at": _iso(schedule.created_at), "updated_at": _iso(schedule.updated_at),
        "links": schedule_links(schedule),
    }
    if runs is not None:
        data["runs"] = [run_json(job) for job in runs]
    if operator:
        data["owner"] = schedule.owner
    return data
