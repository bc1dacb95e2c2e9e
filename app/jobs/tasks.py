"""Thin Celery tasks: they receive ids, the jobs package does the work."""
from __future__ import annotations

from celery import Task, shared_task

from app.jobs.runner import RetryLater, run_attempt
from app.jobs.sweeper import sweep


@shared_task(bind=True, name="longrun.run_job", max_retries=None)
def run_job(self: Task, job_id: str) -> None:
    """Run one attempt of job ``job_id``; schedule the next attempt if it asks for one."""
    outcome = run_attempt(job_id, self.request.id)
    if isinstance(outcome, RetryLater):
        raise self.retry(countdown=outcome.countdown)


@shared_task(name="longrun.sweep", ignore_result=True)
def run_sweep() -> dict:
    """Periodic: re-publish lost messages and rescue jobs of dead workers."""
    return sweep().__dict__


@shared_task(name="longrun.purge", ignore_result=True)
def run_purge() -> dict:
    """Periodic: apply the retention policy (roll-up first, then delete)."""
    from app.retention.purge import purge

    return dict(purge().purged)
