"""The periodic sweep: nothing is lost when a publish fails, Redis restarts or a worker dies."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import ColumnElement

from app.extensions import db
from app.jobs import dispatch
from app.jobs.broker import BrokerView, snapshot
from app.jobs.lifecycle import transition
from app.jobs.models import Job, utcnow
from app.jobs.states import JobState

log = logging.getLogger(__name__)

BATCH = 200
# A message published this long ago and found nowhere in the broker is lost (re-published within ~25 s).
LOST_AFTER = timedelta(seconds=15)


@dataclass
class SweepReport:
    """What one sweep did."""

    redispatched: int = 0
    orphans_retried: int = 0
    orphans_failed: int = 0
    orphans_cancelled: int = 0


def _matching(condition) -> Iterator[Job]:
    """Yield matching jobs one at a time, each locked and re-checked under its lock."""
    ids = list(db.session.execute(db.select(Job.id).where(condition).limit(BATCH)).scalars())
    db.session.rollback()
    for job_id in ids:
        # SKIP LOCKED: two sweeps at once (two beat processes) never handle the same job.
        job = db.session.execute(
            db.select(Job).where(Job.id == job_id, condition)
            .with_for_update(skip_locked=True, of=Job).execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if job is None:
            db.session.rollback()
            continue
        yield job


def sweep() -> SweepReport:
    """Send jobs whose message was lost back to waiting, and rescue jobs whose worker died."""
    report = SweepReport()
    cfg = current_app.config
    try:
        broker = snapshot(cfg)
    except redis.RedisError as exc:
        log.info("sweep skipped: the broker is unreachable (%s)", exc)
        return report
    now = utcnow()
    stale_after = timedelta(seconds=cfg["LONGRUN_STALE_AFTER_SECONDS"])
    for job in _matching(_lost_condition(broker, now)):
        dispatch.mark_undispatched(job)  # the dispatcher hands it out again, first in its owner's line
        report.redispatched += 1

    orphaned = (Job.state == JobState.PROCESSING.value) & (
        Job.heartbeat_at.is_(None) | (Job.heartbeat_at < now - stale_after)
    )
    for job in _matching(orphaned):
        _rescue(job, report)
    db.session.commit()
    if report.redispatched or report.orphans_retried or report.orphans_failed or report.orphans_cancelled:
        log.info("sweep: %s", report)
    return report


def _lost_condition(broker: BrokerView, now: datetime) -> ColumnElement[bool]:
    """Dispatched jobs whose message is provably gone, whatever their age.

    Handed to Celery more than ``LOST_AFTER`` ago and not started, with a message neither in the queue nor
    with a worker — or sitting with a worker that has not started it for twice that long (a live worker with
    a free slot claims within milliseconds: the one holding it died or hangs). Each is re-checked under its row
    lock; a straggling message that turns up later still runs the job at most once (claim checks the row).
    """
    dispatched_long_ago = Job.state.in_(dispatch.WAITING_STATES) & (Job.dispatched_at < now - LOST_AFTER)
    suspects = db.session.execute(
        db.select(Job.id, Job.celery_task_id).where(dispatched_long_ago).limit(BATCH * 10)
    ).all()
    db.session.rollback()
    lost = [job_id for job_id, task_id in suspects
            if not broker.holds(task_id) or broker.held_longer_than(task_id, 2 * LOST_AFTER.total_seconds())]
    return dispatched_long_ago & Job.id.in_(lost)


def _rescue(job: Job, report: SweepReport) -> None:
    """Decide the fate of a locked Processing job whose worker stopped beating."""
    silent = int((utcnow() - job.heartbeat_at).total_seconds()) if job.heartbeat_at else None
    why = f"no heartbeat from worker {job.worker} for {silent} s" if silent is not None else "no heartbeat"
    if job.cancel_requested:
        transition(job.id, JobState.CANCELLED, f"Cancelled ({why})", job=job)
        report.orphans_cancelled += 1
        return
    if job.attempts >= job.max_attempts:
        def fail(j: Job) -> None:
            j.error_type = "WorkerLost"
            j.error_message = f"The worker running attempt {j.attempts} stopped responding ({why})"

        transition(job.id, JobState.FAILED, f"Failed: {why}; no attempts left", job=job, update=fail)
        report.orphans_failed += 1
        return

    def requeue(j: Job) -> None:
        j.next_attempt_at = utcnow()
        j.dispatched_at = None  # waiting again; the dispatcher gives it a new task id when its turn comes
        j.error_type = "WorkerLost"
        j.error_message = f"The worker running attempt {j.attempts} stopped responding ({why})"

    transition(job.id, JobState.RETRYING, f"Attempt {job.attempts} lost ({why}); retrying", job=job, update=requeue)
    report.orphans_retried += 1
