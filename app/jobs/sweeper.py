"""The periodic sweep: nothing is lost when a publish fails, Redis restarts or a worker dies."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_

from app.extensions import db
from app.jobs import dispatch
from app.jobs.lifecycle import transition
from app.jobs.models import Job, utcnow
from app.jobs.states import JobState

log = logging.getLogger(__name__)

BATCH = 200
# A job created this recently may still be in the middle of its own publish.
PUBLISH_GRACE = timedelta(seconds=5)


@dataclass
class SweepReport:
    """What one sweep did."""

    redispatched: int = 0
    orphans_retried: int = 0
    orphans_failed: int = 0
    orphans_cancelled: int = 0


def _matching(condition) -> Iterator[Job]:  # noqa: ANN001 - a SQLAlchemy clause
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
    """Re-publish jobs whose message was lost and rescue jobs whose worker died."""
    report = SweepReport()
    cfg = current_app.config
    now = utcnow()
    epoch = dispatch.broker_epoch()
    if epoch is None:
        log.info("sweep skipped: the broker is unreachable")
        return report
    redispatch_after = timedelta(seconds=cfg["LONGRUN_REDISPATCH_AFTER_SECONDS"])
    stale_after = timedelta(seconds=cfg["LONGRUN_STALE_AFTER_SECONDS"])

    waiting = or_(
        Job.dispatched_at.is_(None),
        Job.broker_epoch.is_(None),
        Job.broker_epoch != epoch,  # Redis restarted since the publish: the message may be gone
        Job.dispatched_at < now - redispatch_after,
    )
    lost_enqueued = (Job.state == JobState.ENQUEUED.value) & (Job.created_at < now - PUBLISH_GRACE) & waiting
    lost_retry = (Job.state == JobState.RETRYING.value) & (
        waiting | (Job.next_attempt_at < now - stale_after)
    )
    for job in _matching(lost_enqueued | lost_retry):
        due = job.next_attempt_at
        countdown = max(0.0, (due - utcnow()).total_seconds()) if due else None
        if dispatch.redispatch(job, countdown or None):
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
        j.error_type = "WorkerLost"
        j.error_message = f"The worker running attempt {j.attempts} stopped responding ({why})"

    transition(job.id, JobState.RETRYING, f"Attempt {job.attempts} lost ({why}); retrying", job=job, update=requeue)
    if dispatch.redispatch(job):
        report.orphans_retried += 1
