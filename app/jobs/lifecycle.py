"""Every change to a job goes through here: row lock, legal transition, numbered event, commit, publish."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Callable

import sqlalchemy as sa
from blinker import Namespace as Signals
from flask import current_app
from sqlalchemy.orm import Session

from app.channels import JobEventMessage, Namespace, publish_events
from app.extensions import db
from app.jobs import bookkeeping
from app.jobs.counters import record_transition
from app.jobs.models import Job, JobEvent, utcnow
from app.jobs.states import JobState, check_transition
from app.jobs.upsert import Write
from app.jobs.view import JobView

# Progress and log messages are user-visible text; keep them bounded.
MAX_MESSAGE_CHARS = 1000

# Sent with the locked job inside the transaction that gives it its final state, before the commit: what a
# receiver adds to the session (a webhook delivery) is written with that state or not at all. Receivers are
# connected by create_app, so this package needs to know none of them.
job_finishing = Signals().signal("job-finishing")


# ``of=Job``: the result is outer-joined in, and PostgreSQL cannot lock the nullable side of a join. Built once:
# every change of every job starts here, and building the statement cost more CPU than running it.
_LOCK_JOB = (sa.select(Job).where(Job.id == sa.bindparam("job_id")).with_for_update(of=Job)
             .execution_options(populate_existing=True))


def lock_job(job_id: uuid.UUID | str) -> Job | None:
    """Load a job with a row lock (PostgreSQL ``FOR UPDATE``; SQLite serialises writers anyway)."""
    return db.session.execute(_LOCK_JOB, {"job_id": _as_uuid(job_id)}).scalar_one_or_none()


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


_EVENTS = "longrun.pending_events"
_EVENT_COLUMNS = ("job_id", "seq", "kind", "state", "progress", "message", "attempt", "created_at")


def append_event(job: Job, kind: str, message: str | None) -> JobEvent:
    """Add the next numbered event to ``job``'s history (caller holds the row lock)."""
    job.last_seq = (job.last_seq or 0) + 1
    event = JobEvent(
        job_id=job.id,
        seq=job.last_seq,
        kind=kind,
        state=job.state,
        progress=job.progress or 0.0,
        message=(message or "")[:MAX_MESSAGE_CHARS] or None,
        attempt=job.attempts or 0,
        created_at=utcnow(),
    )
    bookkeeping.pending(_EVENTS, list).append(event)
    return event


@bookkeeping.writes_at_commit(rank=0, stores=(_EVENTS,))
def _pending_events(session: Session) -> list[Write]:
    """The events appended in this transaction, inserted at commit with the rest of the bookkeeping (not through
    the ORM: nothing reads them back before the commit)."""
    events: list[JobEvent] = session.info.pop(_EVENTS, None) or []
    return [Write(JobEvent.__table__, [{name: getattr(e, name) for name in _EVENT_COLUMNS} for e in events])]


def event_message(job: Job, event: JobEvent) -> JobEventMessage:
    """The wire form of a recorded event: the event's own fields, the job's from its one projection (JobView)."""
    view = JobView.from_job(job)
    return JobEventMessage(
        job_id=view.id,
        owner=job.owner,
        report=view.report,
        seq=event.seq,
        kind=event.kind,
        state=event.state,
        progress=round(event.progress, 2),
        message=event.message,
        attempt=event.attempt,
        ts=event.created_at.isoformat(),
        done=view.done,
        total=view.total,
        progress_message=view.message,
        max_attempts=view.max_attempts,
        cancel_requested=view.cancel_requested,
        error=view.error,
        has_result=view.has_result,
        created_at=_iso(view.created_at),
        started_at=_iso(view.started_at),
        finished_at=_iso(view.finished_at),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def commit_and_publish(job: Job, events: list[JobEvent]) -> None:
    """Commit, then publish what was committed (never publish what may roll back)."""
    messages = [event_message(job, e) for e in events]
    db.session.commit()
    cfg = current_app.config
    publish_events(cfg["REDIS_URL"], Namespace.of(cfg), messages)


def transition(
    job_id: uuid.UUID | str,
    target: JobState,
    message: str,
    *,
    update: Callable[[Job], None] | None = None,
    job: Job | None = None,
    earlier: list[JobEvent] | None = None,
) -> Job:
    """Move a job to ``target``; ``IllegalTransition`` (and a rollback) if the lifecycle forbids it.

    Pass ``job`` when the caller already holds its row lock in this transaction, and ``earlier`` for
    events it appended in that transaction (published first, in order).
    """
    if job is None:
        job = lock_job(job_id)
        if job is None:
            raise LookupError(f"job {job_id} does not exist")
    old = job.job_state
    try:
        check_transition(old, target)
    except Exception:
        db.session.rollback()
        raise
    job.state = target.value
    now = utcnow()
    first_start = target == JobState.PROCESSING and job.started_at is None
    if first_start:
        job.started_at = now
    if target.is_final:
        job.finished_at = now
        job.next_attempt_at = None
    if update is not None:
        update(job)
    record_transition(job, old, target, first_start=first_start)  # written with this transaction's commit
    if target.is_final:
        job_finishing.send(job)
    event = append_event(job, "state", message)
    commit_and_publish(job, [*(earlier or []), event])
    return job


class JobSuperseded(Exception):
    """This attempt no longer owns the job (it ended, or another attempt took over)."""


def record_note(
    job_id: uuid.UUID | str, kind: str, message: str, *, task_id: str | None = None, **fields: object
) -> Job:
    """Record a non-state event (progress sample or log line), updating ``fields`` on the row.

    With ``task_id``, only the attempt that currently runs the job may write.
    """
    job = lock_job(job_id)
    if job is None or (
        task_id is not None and (job.celery_task_id != task_id or job.job_state != JobState.PROCESSING)
    ):
        db.session.rollback()
        raise JobSuperseded(str(job_id))
    for name, value in fields.items():
        setattr(job, name, value)
    event = append_event(job, kind, message)
    commit_and_publish(job, [event])
    return job
