"""Purging finished jobs: roll up their counts, leave a tombstone, delete row, history and artifact."""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app

from app.extensions import db
from app.jobs.counters import record_transition
from app.jobs.models import Job, utcnow
from app.jobs.states import JobState
from app.retention.models import JobDailyCount, PurgedJob

log = logging.getLogger(__name__)

BATCH = 500


def max_ages() -> dict[str, timedelta]:
    """Retention per final state, from configuration."""
    cfg = current_app.config
    return {
        JobState.SUCCEEDED.value: timedelta(hours=cfg["LONGRUN_KEEP_SUCCEEDED_HOURS"]),
        JobState.CANCELLED.value: timedelta(hours=cfg["LONGRUN_KEEP_CANCELLED_HOURS"]),
        JobState.FAILED.value: timedelta(hours=cfg["LONGRUN_KEEP_FAILED_HOURS"]),
    }


@dataclass
class PurgeReport:
    """How many jobs were purged per state."""

    purged: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def total(self) -> int:
        """All purged jobs."""
        return sum(self.purged.values())


def purge(now: datetime | None = None, dry_run: bool = False) -> PurgeReport:
    """Purge every finished job older than its state's retention, in batches."""
    now = now or utcnow()
    report = PurgeReport()
    for state, age in max_ages().items():
        if dry_run:
            report.purged[state] = db.session.execute(
                db.select(db.func.count()).select_from(Job).where(Job.state == state, Job.finished_at < now - age)
            ).scalar_one()
            continue
        while True:
            jobs = list(db.session.execute(
                db.select(Job).where(Job.state == state, Job.finished_at < now - age)
                .order_by(Job.finished_at).limit(BATCH).with_for_update(skip_locked=True, of=Job)
            ).scalars())
            if not jobs:
                break
            _roll_up(jobs)
            for job in jobs:
                tombstone(job, "retention", now)
                record_transition(job, job.job_state, None)  # the state gauge drops; no total ever does
                db.session.delete(job)
            db.session.commit()  # roll-up, counters, tombstones and deletes land together or not at all
            report.purged[state] += len(jobs)
            if len(jobs) < BATCH:
                break
    if report.total:
        log.info("purged %s finished jobs: %s", report.total, dict(report.purged))
    return report


def tombstone(job: Job, reason: str, now: datetime | None = None) -> None:
    """Record that ``job`` existed, so its id answers 410 Gone to its owner."""
    db.session.merge(PurgedJob(id=job.id, owner=job.owner, report=job.report, state=job.state,
                               finished_at=job.finished_at, purged_at=now or utcnow(), reason=reason))


def _roll_up(jobs: list[Job]) -> None:
    """Add the purged jobs to the daily counts that the per-day throughput chart reads."""
    groups = Counter(((job.finished_at or job.created_at).date(), job.report, job.state) for job in jobs)
    for (day, report, state), n in groups.items():
        row = db.session.execute(
            db.select(JobDailyCount).where(JobDailyCount.day == day, JobDailyCount.report == report,
                                           JobDailyCount.state == state).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            row = JobDailyCount(day=day, report=report, state=state, jobs=0)
            db.session.add(row)
        row.jobs += n
