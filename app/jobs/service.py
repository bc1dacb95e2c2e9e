"""What users and operators do to jobs: create, find, cancel, retry."""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.jobs import dispatch
from app.jobs.counters import record_transition
from app.jobs.lifecycle import append_event, commit_and_publish, lock_job, transition
from app.jobs.limits import Throttled, check_owner_limits
from app.jobs.models import Job, JobEvent, utcnow
from app.jobs.priority import resolve as resolve_priority
from app.jobs.results import delete_chunks
from app.jobs.states import FINAL_STATES, JobState
from app.reports import get_report
from app.reports.params import to_json_params
from app.reports.registry import Report
from app.telemetry.tracing import current_trace_id, current_trace_parent

log = logging.getLogger(__name__)


class JobConflict(Exception):
    """The job's state does not allow the requested action."""


class IdempotencyMismatch(Exception):
    """The idempotency key was used before with a different request."""


@dataclass
class Submission:
    """The outcome of a create call."""

    job: Job
    created: bool
    dispatched: bool
    reused: bool = False  # an existing job with the same report and parameters answered (result reuse)


def fingerprint(report: str, params: dict[str, Any]) -> str:
    """A stable hash of what was asked, to compare idempotent replays."""
    canonical = json.dumps({"report": report, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_job(owner: str | None, job_id: str) -> Job | None:
    """The owner's job with this id; None for unknown ids, malformed ids and other owners' jobs alike.

    ``owner=None`` finds the job of any owner: for callers that proved access another way (a read capability).
    """
    key = parse_job_id(job_id)
    job = db.session.get(Job, key) if key else None
    if job is None or (owner is not None and job.owner != owner):
        return None
    return job


def parse_job_id(job_id: str) -> uuid.UUID | None:
    """The UUID in ``job_id``, or None for anything malformed."""
    try:
        return uuid.UUID(job_id)
    except (ValueError, AttributeError, TypeError):
        return None


def submit_job(
    owner: str,
    report_name: str,
    raw_params: Any,
    *,
    api_version: str = "v2",
    idempotency_key: str | None = None,
    priority: object = None,
    allowance: int | None = None,
    run_at: datetime | None = None,
    schedule_id: uuid.UUID | None = None,
    reuse: bool = False,
) -> Submission:
    """Validate and persist (committed first) a job, then let the dispatcher hand it out if a slot is free.

    ``priority``: what the request asks for, at most ``allowance`` (default: the report's own priority).
    ``run_at`` in the future creates the job Scheduled (the clock enqueues it then); ``schedule_id`` links a
    schedule's run-now to its schedule, with ``run_at`` as its slot.
    ``reuse``: an interactive request that accepts, within the report's ``reuse_seconds``, the owner's job with
    the same parameters that is waiting, running or succeeded instead of a new run.
    Raises ``UnknownReport``, ``ParamsInvalid``, ``PriorityInvalid``, ``IdempotencyMismatch`` or ``Throttled``.
    """
    report = get_report(report_name)
    params = to_json_params(report.validate(raw_params))
    rank = resolve_priority(priority, report.priority if allowance is None else allowance)
    digest = fingerprint(report.name, params)
    if idempotency_key is not None:
        existing = _find_idempotent(owner, idempotency_key, digest)
        if existing is not None:
            return Submission(existing, created=False, dispatched=True)
    elif reuse and run_at is None and report.reuse_seconds:
        existing = _reusable(owner, digest, report.reuse_seconds)
        if existing is not None:
            return Submission(existing, created=False, dispatched=True, reused=True)
    try:
        check_owner_limits(owner)
    except Throttled:
        db.session.rollback()  # release the per-owner lock; nothing was written
        raise
    later = run_at is not None and run_at > utcnow()
    job, event = build_job(owner, report, params, priority=rank, api_version=api_version,
                           state=JobState.SCHEDULED if later else JobState.ENQUEUED,
                           scheduled_for=run_at, schedule_id=schedule_id)
    job.idempotency_key = idempotency_key
    job.request_fingerprint = digest
    try:
        commit_and_publish(job, [event])
    except IntegrityError:
        # Two identical idempotent requests raced: the other one won, answer with its job.
        db.session.rollback()
        existing = _find_idempotent(owner, idempotency_key or "", digest)
        if existing is None:
            raise
        return Submission(existing, created=False, dispatched=True)
    if later:
        return Submission(job, created=True, dispatched=False)
    # An idle deployment starts the job now; a busy one keeps it waiting in line (fair dispatch).
    published = _dispatch_after_commit()
    return Submission(job, created=True, dispatched=any(j.id == job.id for j in published))


def build_job(owner: str, report: Report, params: dict[str, Any], *, priority: int, api_version: str,
              state: JobState = JobState.ENQUEUED, scheduled_for: datetime | None = None,
              schedule_id: uuid.UUID | None = None) -> tuple[Job, JobEvent]:
    """A new job (validated ``params``) added to the session and counted, with its first event; not committed."""
    job = Job(
        id=uuid.uuid4(),
        owner=owner,
        report=report.name,
        params=params,
        state=state.value,
        api_version=api_version,
        max_attempts=report.max_attempts,
        priority=priority,
        celery_task_id=None,
        dispatched_at=None,  # waiting: the dispatcher decides when it goes to a worker
        trace_id=current_trace_id(),
        trace_parent=current_trace_parent(),
        schedule_id=schedule_id,
        scheduled_for=scheduled_for,
        last_seq=0,
        progress=0.0,
        attempts=0,
        result=None,  # known: saves a lazy load when the response is serialised
    )
    db.session.add(job)
    record_transition(job, None, state)
    if state == JobState.SCHEDULED:
        message = f"Scheduled job with Id: {job.id} for {scheduled_for.isoformat()}"
    else:
        message = f"Enqueued job with Id: {job.id}"
    return job, append_event(job, "state", message)


def _dispatch_after_commit() -> list[Job]:
    """Hand out free slots now; the job is safe in PostgreSQL whatever happens, and the clock retries."""
    try:
        return dispatch.dispatch_ready()
    except Exception:
        log.warning("dispatch after commit failed; the clock will dispatch", exc_info=True)
        return []


def _find_idempotent(owner: str, key: str, digest: str) -> Job | None:
    job = db.session.execute(
        db.select(Job).where(Job.owner == owner, Job.idempotency_key == key)
    ).scalar_one_or_none()
    if job is not None and job.request_fingerprint != digest:
        raise IdempotencyMismatch(key)
    return job


REUSABLE = (JobState.ENQUEUED.value, JobState.PROCESSING.value, JobState.SUCCEEDED.value)


def _reusable(owner: str, digest: str, seconds: float) -> Job | None:
    """The owner's newest job with this fingerprint created in the last ``seconds`` that will give (or gave) a
    result: waiting, running (not being cancelled) or succeeded. Reads the owner's index over that window only."""
    return db.session.execute(
        sa.select(Job).where(Job.owner == owner, Job.created_at >= utcnow() - timedelta(seconds=seconds),
                             Job.request_fingerprint == digest, Job.state.in_(REUSABLE),
                             Job.cancel_requested.is_(False))
        .order_by(Job.created_at.desc(), Job.id.desc()).limit(1)).scalar_one_or_none()


def cancel_job(job: Job, by: str = "owner") -> Job:
    """Cancel now if the job has not started; ask a running job to stop at its next checkpoint."""
    locked = lock_job(job.id)
    if locked is None:
        raise LookupError(str(job.id))
    state = locked.job_state
    if state in FINAL_STATES:
        db.session.rollback()
        raise JobConflict(f"the job already ended as {state.value}; there is nothing to cancel")
    if state == JobState.PROCESSING:
        if not locked.cancel_requested:
            locked.cancel_requested = True
            event = append_event(locked, "log", f"Cancellation requested by {by}; stopping at the next checkpoint")
            commit_and_publish(locked, [event])
        else:
            db.session.rollback()
        return locked
    return transition(locked.id, JobState.CANCELLED, f"Cancelled by {by} before it ran", job=locked,
                      update=lambda j: setattr(j, "cancel_requested", True))


def retry_job(job: Job, by: str = "owner", priority: int | None = None) -> Job:
    """Put a failed or cancelled job back in line with a fresh attempt budget (and ``priority``, if given)."""
    if by == "owner":
        try:
            check_owner_limits(job.owner)
        except Throttled:
            db.session.rollback()
            raise
    locked = lock_job(job.id)
    if locked is None:
        raise LookupError(str(job.id))
    if locked.job_state not in (JobState.FAILED, JobState.CANCELLED):
        state = locked.state
        db.session.rollback()
        raise JobConflict(f"only Failed or Cancelled jobs can be retried; this one is {state}")

    def reset(j: Job) -> None:
        j.attempts = 0
        j.cancel_requested = False
        j.progress = 0.0
        j.progress_done = j.progress_total = None
        j.progress_message = None
        j.checkpoint = None  # a requeue by hand starts over: the cursor may be what made it fail
        j.error_type = j.error_message = j.error_traceback = None
        j.finished_at = None
        j.heartbeat_at = None
        j.next_attempt_at = None
        if priority is not None:
            j.priority = priority
        # Back in its owner's line with its priority and its original place (created_at): before newer jobs.
        j.dispatched_at = None
        if j.result is not None:
            db.session.delete(j.result)
            delete_chunks(j.id)

    transition(locked.id, JobState.ENQUEUED, f"Requeued by {by}", job=locked, update=reset)
    _dispatch_after_commit()
    return locked
