"""Publishing a job to the Celery queue, after its row is committed."""
from __future__ import annotations

import logging
import uuid

from flask import current_app

from app.extensions import db
from app.jobs.models import Job, utcnow

log = logging.getLogger(__name__)

RUN_JOB_TASK = "longrun.run_job"

def new_task_id() -> str:
    """A fresh Celery task id; only the message carrying the job's current id may run it."""
    return str(uuid.uuid4())


def publish(job: Job, countdown: float | None = None) -> bool:
    """Send the job's current task id to the queue; False (logged) if the broker refused."""
    report_limit = _report_time_limit(job.report)
    try:
        current_app.extensions["celery"].send_task(
            RUN_JOB_TASK,
            args=[str(job.id)],
            task_id=job.celery_task_id,
            queue=current_app.config["LONGRUN_QUEUE"],
            countdown=countdown,
            soft_time_limit=report_limit,
            time_limit=report_limit + 60 if report_limit else None,
        )
        return True
    except Exception as exc:  # noqa: BLE001 - any broker failure leaves the job for the sweep
        log.warning("could not publish job %s: %s", job.id, exc)
        return False


def _report_time_limit(name: str) -> int | None:
    from app.reports import get_report

    try:
        return get_report(name).time_limit
    except KeyError:
        return None


def redispatch(job: Job, countdown: float | None = None) -> bool:
    """Give ``job`` a new task id (making older messages stale), commit, and publish it."""
    job.celery_task_id = new_task_id()
    job.dispatched_at = utcnow()
    db.session.commit()
    if publish(job, countdown):
        return True
    mark_undispatched(job)
    return False


def mark_undispatched(job: Job) -> None:
    """Record that the publish failed, so the sweep picks the job up first."""
    try:
        job.dispatched_at = None
        db.session.commit()
    except Exception:  # noqa: BLE001 - the sweep also catches jobs whose publish timed out
        db.session.rollback()
        log.warning("could not mark job %s undispatched", job.id, exc_info=True)
