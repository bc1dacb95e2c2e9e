"""The thin Celery task: it receives a job id, the jobs package does the work (periodic duties: app/clock)."""
from __future__ import annotations

from celery import Task, shared_task

from app.jobs.runner import RetryLater, run_attempt


@shared_task(bind=True, name="longrun.run_job", max_retries=None)
def run_job(self: Task, job_id: str) -> None:
    """Run one attempt of job ``job_id``; schedule the next attempt if it asks for one."""
    outcome = run_attempt(job_id, self.request.id)
    if isinstance(outcome, RetryLater):
        raise self.retry(countdown=outcome.countdown)
