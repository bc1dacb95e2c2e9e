"""Backpressure per owner: a cap on unfinished jobs (waiting or running), and on jobs created per minute."""
from __future__ import annotations

import math
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.jobs.models import Job, utcnow
from app.jobs.slots import OwnerQueue
from app.jobs.states import JobState

WINDOW = timedelta(minutes=1)


class Throttled(Exception):
    """The owner is over a limit; nothing was created."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = max(1, retry_after)


def check_owner_limits(owner: str) -> None:
    """Raise ``Throttled`` if ``owner`` may not start another job now.

    Runs inside the transaction that will insert the job: on PostgreSQL an advisory lock per owner
    makes check-then-insert atomic, so two racing requests cannot both slip under the cap.
    """
    cfg = current_app.config
    max_unfinished, per_minute = cfg["LONGRUN_MAX_WAITING_PER_OWNER"], cfg["LONGRUN_MAX_JOBS_PER_MINUTE"]
    if max_unfinished <= 0 and per_minute <= 0:
        return
    if db.engine.dialect.name == "postgresql":
        # Its own statement: a statement's snapshot is taken before it waits, so the counts below must
        # come after the lock is held to see what a racing request committed meanwhile.
        db.session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(owner))))
    since = utcnow() - WINDOW
    mine = Job.owner == owner
    # The creation rate is the owner's own requests: what their schedules fire never makes a click answer 429.
    by_hand = Job.schedule_id.is_(None)
    # One round trip: the owner's line (kept at write time) and its jobs of the last minute (index range).
    # Jobs asked for later count too: they will wait or run. (An index range of the owner's Scheduled jobs.)
    scheduled = sa.select(sa.func.count()).where(mine, Job.state == JobState.SCHEDULED.value).scalar_subquery()
    unfinished, recent, oldest = db.session.execute(sa.select(
        sa.func.coalesce(sa.select(OwnerQueue.waiting + OwnerQueue.inflight).where(OwnerQueue.owner == owner)
                         .scalar_subquery(), 0) + scheduled,
        sa.select(sa.func.count()).where(mine, Job.created_at > since, by_hand).scalar_subquery(),
        sa.select(sa.func.min(Job.created_at)).where(mine, Job.created_at > since, by_hand).scalar_subquery(),
    )).one()
    unfinished = unfinished or 0
    if 0 < max_unfinished <= unfinished:
        raise Throttled(f"You already have {unfinished} jobs waiting or running (the limit is {max_unfinished}). "
                        "Wait for some to finish, or cancel some, then try again.", retry_after=5)
    if 0 < per_minute <= recent:
        wait = math.ceil((oldest + WINDOW - utcnow()).total_seconds()) if oldest else 60
        raise Throttled(f"You started {recent} jobs in the last minute (the limit is {per_minute}); "
                        f"try again in {max(1, wait)} s.", retry_after=wait)
