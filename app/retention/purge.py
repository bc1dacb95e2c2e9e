"""Purging finished jobs: roll up their counts, leave a tombstone, delete row, history and artifact.

The purge goes in batches (app/retention/batch.py), each its own short transaction that locks only expired
finished rows (``FOR UPDATE SKIP LOCKED``: a row someone else holds is left for the next run, never waited
for) and works set-based, with one counter update per batch at commit.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.jobs.counters import record_transition
from app.jobs.lifecycle import lock_job
from app.jobs.models import Job, utcnow
from app.jobs.service import JobConflict, parse_job_id
from app.jobs.states import JobState
from app.retention.batch import JOBS, Cursor, purge_batch
from app.retention.models import PurgedJob

log = logging.getLogger(__name__)


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
    """How many jobs were purged per state, in how many transactions, and whether work is left."""

    purged: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    batches: int = 0
    longest_batch: float = 0.0  # seconds: the longest transaction the purge held
    more: bool = False  # stopped by its time budget with expired jobs left

    @property
    def total(self) -> int:
        """All purged jobs."""
        return sum(self.purged.values())


@dataclass(frozen=True)
class Pace:
    """How one purge run goes: jobs per transaction, when to stop starting batches, how long to rest."""

    size: int
    deadline: float | None  # time.monotonic() after which no batch starts; None: run until done
    rest: float  # seconds of rest per second of batch, so live traffic keeps most of the CPU and the disk

    @classmethod
    def from_config(cls, budget: float | None, batch_size: int | None, duty_cycle: float | None) -> Pace:
        """The pace from the arguments, else from configuration."""
        cfg = current_app.config
        duty = min(1.0, max(0.01, duty_cycle or cfg["LONGRUN_PURGE_DUTY_CYCLE"]))
        return cls(size=max(1, batch_size or cfg["LONGRUN_PURGE_BATCH"]),  # 0 would never end
                   deadline=None if budget is None else time.monotonic() + budget, rest=1.0 / duty - 1.0)


def purge(now: datetime | None = None, dry_run: bool = False, *, budget: float | None = None,
          batch_size: int | None = None, duty_cycle: float | None = None) -> PurgeReport:
    """Purge finished jobs older than their state's retention, one short transaction per batch.

    ``budget`` (seconds): start no new batch once it ran out, and say ``more`` if expired jobs may be left;
    the clock calls again, so a backlog of a million rows drains in slices while its other duties keep
    their periods. ``None``: go on until nothing is left (the CLI). ``duty_cycle``: the share of the time
    spent in batches (default ``LONGRUN_PURGE_DUTY_CYCLE``); after each batch the purge rests the rest.
    """
    now = now or utcnow()
    if dry_run:
        return _count_expired(now)
    pace = Pace.from_config(budget, batch_size, duty_cycle)
    report = PurgeReport()
    for state, age in max_ages().items():
        _purge_state(report, state, now - age, now, pace)
        if report.more:
            break
    if report.total:
        log.info("purged %s finished jobs in %s batches (longest transaction %.0f ms)%s: %s", report.total,
                 report.batches, report.longest_batch * 1000, ", more left" if report.more else "",
                 dict(report.purged))
    return report


def _resume_points() -> dict[str, Cursor]:
    """Where this process's last purge of each state stopped at its budget (a hint: lost on restart, no harm).

    The next call goes on from there instead of walking again over the index entries of the rows the previous
    slices deleted (dead until VACUUM; with an old snapshot open somewhere, every first batch would re-read
    them). A pass that reaches the end forgets its place, so the next starts at the oldest again and picks up
    rows that were skipped because someone held them.
    """
    return current_app.extensions.setdefault("longrun.purge_resume", {})


def _purge_state(report: PurgeReport, state: str, cutoff: datetime, now: datetime, pace: Pace) -> None:
    """Purge the expired jobs of one state, batch after batch, until none is left or time is up.

    The budget is checked after a batch, so every call makes progress, even with no time left.
    """
    resume = _resume_points()
    after = resume.pop(state, None)
    while True:
        started = time.monotonic()
        taken, after = purge_batch(state, cutoff, now, pace.size, after)
        took = time.monotonic() - started
        if taken:
            report.batches += 1
            report.purged[state] += taken
            report.longest_batch = max(report.longest_batch, took)
            log.debug("purge batch: %s %s jobs in %.0f ms", taken, state, took * 1000)
        if taken < pace.size:  # the range is exhausted (rows locked by others wait for the next run)
            return
        if pace.deadline is not None and time.monotonic() >= pace.deadline:
            report.more = True
            resume[state] = after
            return
        # A slower batch (a busy database) means a longer rest: the purge yields most when others need most.
        time.sleep(took * pace.rest)


def _count_expired(now: datetime) -> PurgeReport:
    """What a purge would remove now, per state (counted, nothing changed)."""
    report = PurgeReport()
    for state, age in max_ages().items():
        report.purged[state] = db.session.execute(
            sa.select(sa.func.count()).select_from(JOBS).where(JOBS.c.state == state,
                                                               JOBS.c.finished_at < now - age)
        ).scalar_one()
    db.session.rollback()
    return report


def tombstone(job: Job, reason: str, now: datetime | None = None) -> None:
    """Record that ``job`` existed, so its id answers 410 Gone to its owner."""
    db.session.merge(PurgedJob(id=job.id, owner=job.owner, report=job.report, state=job.state,
                               finished_at=job.finished_at, purged_at=now or utcnow(), reason=reason))


def purged_job(owner: str | None, job_id: str) -> PurgedJob | None:
    """The tombstone of the owner's removed job, if there is one (others' tombstones stay hidden; None: any)."""
    key = parse_job_id(job_id)
    gone = db.session.get(PurgedJob, key) if key else None
    return gone if gone is not None and owner in (None, gone.owner) else None


def delete_job(job: Job) -> None:
    """Remove a finished job with its history and result; running jobs must be cancelled first."""
    locked = lock_job(job.id)
    if locked is None:
        raise LookupError(str(job.id))
    if not locked.job_state.is_final:
        state = locked.state
        db.session.rollback()
        raise JobConflict(f"the job is {state}; cancel it before deleting it")
    tombstone(locked, "operator")
    record_transition(locked, locked.job_state, None)  # the state gauge drops; no total ever does
    db.session.delete(locked)
    db.session.commit()
