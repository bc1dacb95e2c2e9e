"""Runs one attempt of a job: claim it, run its report, record the outcome."""
from __future__ import annotations

import logging
import os
import random
import socket
import traceback
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from flask import current_app

from app.extensions import db
from app.jobs.budget import memory_budget
from app.jobs.context import JobContext, Watcher, worker_ref
from app.jobs.dispatch import dispatch_quietly
from app.jobs.lifecycle import JobSuperseded, append_event, lock_job, transition
from app.jobs.models import Job, JobResult, utcnow
from app.jobs.results import delete_chunks
from app.jobs.states import FINAL_STATES, JobState
from app.reports import get_report
from app.reports.context import JobCancelled, ReportRefused
from app.reports.params import ParamsInvalid
from app.reports.registry import UnknownReport
from app.telemetry.logs import current_job_id

log = logging.getLogger(__name__)

TRACEBACK_CHARS = 20_000


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    rng = rng or random
    return delay / 2 + rng.uniform(0, delay / 2)


def worker_alive(ref: str | None) -> bool | None:
    """Whether the process ``host:pid`` lives; None when it runs on another host."""
    if not ref or ":" not in ref:
        return None
    host, _, pid = ref.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _heartbeat_fresh(job: Job) -> bool:
    stale_after = current_app.config["LONGRUN_STALE_AFTER_SECONDS"]
    return job.heartbeat_at is not None and utcnow() - job.heartbeat_at < timedelta(seconds=stale_after)


def claim(job_id: str, task_id: str) -> Job | None:
    """Move the job to Processing for this attempt, or return None if this message must not run it."""
    job = lock_job(job_id)
    if job is None or job.celery_task_id != task_id or job.job_state in FINAL_STATES:
        db.session.rollback()
        log.info("dropping stale message %s for job %s", task_id, job_id)
        return None
    note = ""
    if job.job_state == JobState.PROCESSING:
        # The same message came back: its worker died mid-run, or it is still running elsewhere.
        alive = worker_alive(job.worker)
        if alive or (alive is None and _heartbeat_fresh(job)):
            db.session.rollback()
            return None
        if job.attempts >= job.max_attempts:
            transition(job.id, JobState.FAILED, f"Worker {job.worker} was lost and no attempts are left",
                       job=job, update=lambda j: _set_error(j, "WorkerLost",
                                                            f"the worker running attempt {j.attempts} died", None))
            return None
        note = f" after worker {job.worker} was lost"
    if job.cancel_requested:
        transition(job.id, JobState.CANCELLED, "Cancelled before it ran", job=job)
        return None

    def start(j: Job) -> None:
        j.attempts += 1
        j.heartbeat_at = utcnow()
        j.worker = worker_ref()
        j.next_attempt_at = None

    attempt = job.attempts + 1
    log.info("job %s: attempt %s of %s starts (%s)", job.id, attempt, job.max_attempts, job.report)
    suffix = f" (attempt {attempt} of {job.max_attempts}{note})" if attempt > 1 or note else ""
    return transition(job.id, JobState.PROCESSING, f"Started processing job with Id: {job.id}{suffix}",
                      job=job, update=start)


def _set_error(job: Job, kind: str, message: str, tb: str | None) -> None:
    job.error_type = kind[:128]
    job.error_message = message
    job.error_traceback = tb[-TRACEBACK_CHARS:] if tb else None


def _owned(job_id: str, task_id: str) -> Job:
    """Lock the job, insisting this attempt still owns it."""
    job = lock_job(job_id)
    if job is None or job.celery_task_id != task_id or job.job_state != JobState.PROCESSING:
        db.session.rollback()
        raise JobSuperseded(job_id)
    return job


def run_attempt(job_id: str, task_id: str) -> None:
    """Run one attempt of the job, then hand the freed slot to the next job in line."""
    token = current_job_id.set(job_id)
    try:
        _run_claimed(job_id, task_id)
    finally:
        current_job_id.reset(token)
    # Whatever happened (ran, cancelled before it ran, a stale message), a slot may be free now.
    dispatch_quietly()


def _run_claimed(job_id: str, task_id: str) -> None:
    """Run the attempt this message carries, if it is still the job's to run."""
    job = claim(job_id, task_id)
    if job is None:
        return
    cfg = current_app.config
    watcher = Watcher(db.engine, job.id, task_id, cfg["LONGRUN_CANCEL_POLL_SECONDS"], cfg["LONGRUN_HEARTBEAT_SECONDS"])
    watcher.start()
    ctx = JobContext(job, task_id, watcher)
    try:
        _run_and_record(job, ctx, task_id)
    except JobSuperseded:
        log.warning("job %s was taken over or ended elsewhere; attempt %s stops", job_id, ctx.attempt)
        db.session.rollback()
    finally:
        watcher.stop()
        ctx.close()


def _run_and_record(job: Job, ctx: JobContext, task_id: str) -> None:
    job_id = str(job.id)
    try:
        report = get_report(job.report)
        params = report.validate(job.params)
    except (UnknownReport, ParamsInvalid) as exc:
        # The code changed under a queued job: retrying cannot help.
        return _fail_now(job_id, task_id, ctx, type(exc).__name__, f"The job cannot run: {exc}")
    db.session.commit()  # end the claim's transaction: a long report must not hold it open
    budget = report.memory_limit_mb or current_app.config["LONGRUN_JOB_MEMORY_MB"]
    try:
        with memory_budget(budget):
            report.func(ctx, **params)
    except MemoryError:
        # Not bound to a name: the traceback would keep the report's memory alive.
        return _fail_now(job_id, task_id, ctx, "MemoryError",
                         f"The report exceeded its memory budget of {budget} MB and was stopped")
    except JobCancelled:
        _flush_quietly(ctx)
        locked = _owned(job_id, task_id)
        transition(locked.id, JobState.CANCELLED, f"Cancelled while processing at {locked.progress:.0f}%", job=locked)
        return None
    except ReportRefused as exc:
        return _fail_now(job_id, task_id, ctx, "ReportRefused", str(exc))
    except SoftTimeLimitExceeded:
        limit = report.time_limit or current_app.config["LONGRUN_SOFT_TIME_LIMIT"]
        return _fail_now(job_id, task_id, ctx, "TimeLimitExceeded",
                         f"The report ran past its time limit ({limit} s) and was stopped")
    except JobSuperseded:
        raise
    except Exception as exc:
        return _record_failure(job_id, task_id, ctx, exc)
    return _record_success(job_id, task_id, ctx)


def _record_success(job_id: str, task_id: str, ctx: JobContext) -> None:
    """Succeeded, with the last progress sample and the result, in one transaction."""
    last = ctx.take_pending()
    locked = _owned(job_id, task_id)
    earlier = []
    if last is not None:
        # The last sample lands in the same transaction as the outcome: one commit, not two.
        for name, value in last.fields.items():
            setattr(locked, name, value)
        earlier.append(append_event(locked, last.kind, last.message))

    def succeed(j: Job) -> None:
        j.progress = 100.0
        if j.progress_total:
            j.progress_done = j.progress_total
        j.error_type = j.error_message = j.error_traceback = None
        j.checkpoint = None  # nothing is left to resume
        if ctx.result is not None:
            r = ctx.result
            if r.chunk_size is None and ctx.chunks_may_be_left:
                delete_chunks(j.id)  # e.g. an earlier attempt died while streaming a bigger one
            j.result = JobResult(job_id=j.id, filename=r.filename, content_type=r.content_type,
                                 size=r.size, chunk_size=r.chunk_size, content=r.content)

    transition(locked.id, JobState.SUCCEEDED, f"Completed processing job with Id: {job_id}", job=locked,
               update=succeed, earlier=earlier)
    return None


def _fail_now(job_id: str, task_id: str, ctx: JobContext, kind: str, text: str) -> None:
    """Fail without retrying: the same input would hit the same limit again."""
    _flush_quietly(ctx)
    locked = _owned(job_id, task_id)
    transition(locked.id, JobState.FAILED, text, job=locked, update=lambda j: _set_error(j, kind, text, None))
    return None


def _flush_quietly(ctx: JobContext) -> None:
    try:
        ctx.flush()
    except JobSuperseded:
        raise
    except Exception:
        db.session.rollback()
        log.warning("could not write the last progress of job %s", ctx.job_id, exc_info=True)


def _record_failure(job_id: str, task_id: str, ctx: JobContext, exc: Exception) -> None:
    db.session.rollback()
    _flush_quietly(ctx)
    tb = "".join(traceback.format_exception(exc))
    kind, text = type(exc).__name__, str(exc) or type(exc).__name__
    locked = _owned(job_id, task_id)
    if locked.attempts < locked.max_attempts:
        cfg = current_app.config
        delay = backoff_seconds(locked.attempts, cfg["LONGRUN_RETRY_BACKOFF_SECONDS"],
                                cfg["LONGRUN_RETRY_BACKOFF_MAX_SECONDS"])

        def schedule(j: Job) -> None:
            _set_error(j, kind, text, tb)
            # Back to waiting, due after the backoff: the dispatcher hands it out then, in its owner's turn.
            j.next_attempt_at = utcnow() + timedelta(seconds=delay)
            j.dispatched_at = None

        transition(locked.id, JobState.RETRYING,
                   f"Attempt {locked.attempts} of {locked.max_attempts} failed ({kind}: {text}); retrying in {delay:.1f} s",
                   job=locked, update=schedule)
        return None
    transition(locked.id, JobState.FAILED, f"Failed after {locked.attempts} attempts: {kind}: {text}", job=locked,
               update=lambda j: _set_error(j, kind, text, tb))
    return None
