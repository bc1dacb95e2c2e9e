"""JSON shapes of jobs and events, shared by every JSON endpoint."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import url_for

from app.jobs.models import Job, JobEvent
from app.jobs.position import QueuePlace
from app.jobs.states import JobState
from app.jobs.view import JobView
from app.owners.capability import ACCESS_PARAM
from app.web.rendering import trace_url


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_links(job: Job, *, access: str | None = None, actions: bool = True) -> dict[str, str]:
    """Hypermedia links of a job, only the ones that make sense in its state.

    ``access``: a read capability the read links carry (for clients without the owner's cookie or token);
    ``actions=False`` leaves out what only the owner may do (cancel, retry).
    """
    jid = str(job.id)
    state = job.job_state
    read = {ACCESS_PARAM: access} if access else {}
    links = {
        "self": url_for("api.get_job", job_id=jid, **read),
        "events": url_for("api.job_events", job_id=jid, **read),
        "notifications": url_for("realtime.notifications", job=jid, **read),
    }
    if actions and not state.is_final:
        links["cancel"] = url_for("api.cancel_job", job_id=jid)
    if actions and state in (JobState.FAILED, JobState.CANCELLED):
        links["retry"] = url_for("api.retry_job", job_id=jid)
    if job.has_result:
        links["result"] = url_for("api.job_result", job_id=jid, **read)
    if trace := trace_url(job.trace_id):
        links["trace"] = trace
    return links


def job_json(job: Job, *, operator: bool = False, access: str | None = None, actions: bool = True,
             place: QueuePlace | None = None) -> dict[str, Any]:
    """A job as the API shows it; tracebacks only for operators; ``access``/``actions`` as in ``job_links``.

    ``place``: a waiting job's place in line (single-job views compute it; lists leave it out).
    """
    view = JobView.from_job(job, place)  # the one projection of a job's public state; the API adds its details
    error = None
    if job.error_type:
        error = {"type": job.error_type, "message": job.error_message}
        if operator:
            error["traceback"] = job.error_traceback
    result = None
    if job.result is not None:
        result = {"filename": job.result.filename, "content_type": job.result.content_type,
                  "size": job.result.size}
    data: dict[str, Any] = {
        "id": view.id,
        "report": view.report,
        "params": job.params,
        "state": view.state,
        "final": view.final,
        "progress": {
            "percent": round(view.progress, 2),
            "done": view.done,
            "total": view.total,
            "message": view.message,
        },
        "attempts": view.attempts,
        "max_attempts": view.max_attempts,
        "cancel_requested": view.cancel_requested,
        "created_at": _iso(view.created_at),
        "started_at": _iso(view.started_at),
        "finished_at": _iso(view.finished_at),
        "heartbeat_at": _iso(job.heartbeat_at),
        "next_attempt_at": _iso(job.next_attempt_at),
        "priority": job.priority,
        # A schedule's run (its slot), or a job asked for later (when it was due).
        "schedule_id": str(job.schedule_id) if job.schedule_id else None,
        "scheduled_for": _iso(view.scheduled_for),
        "error": error,
        "result": result,
        "last_seq": view.last_seq,
        "trace_id": view.trace_id,
        "links": job_links(job, access=access, actions=actions),
    }
    if view.place is not None:
        data["queue"] = view.place.to_json()
    if operator:
        data["owner"] = job.owner
        data["worker"] = job.worker
    return data


def event_json(event: JobEvent) -> dict[str, Any]:
    """One history entry."""
    return {
        "seq": event.seq,
        "kind": event.kind,
        "state": event.state,
        "progress": round(event.progress or 0.0, 2),
        "message": event.message,
        "attempt": event.attempt,
        "at": _iso(event.created_at),
    }
