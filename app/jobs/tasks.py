"""The thin Celery task: it receives a job id, the jobs package does the work (periodic duties: app/clock)."""
from __future__ import annotations

from celery import Task, shared_task

from app.jobs.runner import run_attempt


@shared_task(bind=True, name="longrun.run_job")
def run_job(self: Task, job_id: str) -> None:
    """Run one attempt of job ``job_id`` (a failed attempt goes back to waiting; the dispatcher retries it)."""
    run_attempt(job_id, self.request.id)
