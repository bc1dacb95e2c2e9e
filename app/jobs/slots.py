"""Who waits and who runs, per owner, kept at write time; paused dispatch.

A job *waits* while it is Enqueued or Retrying and not yet handed to Celery (``dispatched_at`` is NULL), and is
*in flight* from its dispatch until it leaves Processing. Every change of a job's state or dispatch moves it
between those classes (the flush hook sees the ORM's; the dispatcher's own UPDATE counts its own), and the
difference is added to its owner's ``owner_queues`` row in the same transaction: the dispatcher reads one row per
owner instead of counting jobs, whatever the queue length.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.extensions import db
from app.jobs.bookkeeping import writes_at_commit
from app.jobs.models import Job, UTCDateTime, utcnow
from app.jobs.states import JobState
from app.jobs.upsert import Write

WAITING, IN_FLIGHT, SERVED_AT = "waiting", "inflight", "served_at"
_DISPATCHABLE = (JobState.ENQUEUED.value, JobState.RETRYING.value)
_PENDING = "longrun.owner_queue_deltas"
_SERVED = "longrun.owner_served_at"
# The whole deployment (a pause of every report) in ``dispatch_pauses``.
ALL_REPORTS = "*"


class OwnerQueue(db.Model):
    """One owner's line: how many of its jobs wait, how many are in flight, and when it was last served."""

    __tablename__ = "owner_queues"

    owner: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    waiting: Mapped[int] = mapped_column(sa.Integer, default=0)
    inflight: Mapped[int] = mapped_column(sa.Integer, default=0)
    # Round robin: the owner served longest ago goes first (never served: first of all).
    served_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # Jobs in flight summed over busy owners only, not over every owner who ever submitted.
        sa.Index("ix_owner_queues_busy", "inflight", postgresql_where=sa.text("inflight > 0"),
                 sqlite_where=sa.text("inflight > 0")),
    )


class DispatchPause(db.Model):
    """Dispatch paused for one report, or for every report (``*``): waiting jobs stay waiting."""

    __tablename__ = "dispatch_pauses"

    scope: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paused_by: Mapped[str] = mapped_column(sa.String(128))


# The owner pick's order, straight from the index: no sort of every waiting owner.
sa.Index("ix_owner_queues_turn", OwnerQueue.served_at.asc().nulls_first(), OwnerQueue.owner,
         postgresql_where=sa.text("waiting > 0"), sqlite_where=sa.text("waiting > 0"))

# The dispatcher's lookup of an owner's next job: only waiting rows are in it, in the order they go out.
sa.Index("ix_jobs_waiting_turn", Job.owner, Job.priority.desc(), Job.created_at, Job.id,
         postgresql_where=sa.text("dispatched_at IS NULL AND state IN ('Enqueued', 'Retrying')"),
         sqlite_where=sa.text("dispatched_at IS NULL AND state IN ('Enqueued', 'Retrying')"))


def slot_class(state: str | None, dispatched_at: datetime | None) -> str | None:
    """``waiting``, ``inflight`` or None (final, or not a job) for a job's state and dispatch time."""
    if state in _DISPATCHABLE:
        return WAITING if dispatched_at is None else IN_FLIGHT
    return IN_FLIGHT if state == JobState.PROCESSING.value else None


def _move(job: Job, deleted: bool) -> tuple[str | None, str | None]:
    """The job's class as last loaded or flushed, and as this flush leaves it."""
    insp = sa.inspect(job)
    after = None if deleted else slot_class(job.state, job.dispatched_at)
    if insp.pending:
        return None, after

    def old(name: str) -> object:
        history = insp.attrs[name].history
        return (history.deleted or history.unchanged or [getattr(job, name)])[0]

    return slot_class(old("state"), old("dispatched_at")), after


@event.listens_for(db.session, "before_flush")
def _count_moves(session: Session, _context: object, _instances: object) -> None:
    """Note how each job about to be written moves between waiting and in flight."""
    for job in _jobs(session.new, session.dirty, session.deleted):
        count_move(session, job.owner, *_move(job, deleted=job in session.deleted))


def count_move(session: Session, owner: str, before: str | None, after: str | None) -> None:
    """Note one of ``owner``'s jobs moving from class ``before`` to ``after``: written to its line at commit.

    The flush hook calls it for every job the ORM writes; a statement that changes jobs without the ORM's unit of
    work (the dispatcher's) calls it itself.
    """
    if before == after:
        return
    row = session.info.setdefault(_PENDING, {}).setdefault(owner, {WAITING: 0, IN_FLIGHT: 0})
    if before:
        row[before] -= 1
    if after:
        row[after] += 1


def _jobs(*collections: Iterable[object]) -> Iterable[Job]:
    seen: set[int] = set()
    for collection in collections:
        for obj in collection:
            if isinstance(obj, Job) and id(obj) not in seen:
                seen.add(id(obj))
                yield obj


def mark_served(owner: str, when: datetime) -> None:
    """Record that the dispatcher served ``owner`` at ``when``: written with the owner's counts at commit."""
    db.session().info.setdefault(_SERVED, {})[owner] = when


@writes_at_commit(rank=2, stores=(_PENDING, _SERVED))
def _pending_writes(session: Session) -> list[Write]:
    """This transaction's moves (and serve times), one row per owner touched, in owner order (no lock cycle
    between writers). Called after the flush that counted the last moves."""
    pending = session.info.pop(_PENDING, None) or {}
    served = session.info.pop(_SERVED, None) or {}
    still = {WAITING: 0, IN_FLIGHT: 0}
    rows = [{"owner": owner, **d, SERVED_AT: served.get(owner)}
            for owner in sorted(pending.keys() | served.keys())
            if (d := pending.get(owner, still))[WAITING] or d[IN_FLIGHT] or owner in served]
    return [Write(OwnerQueue.__table__, rows, (WAITING, IN_FLIGHT), keeping=(SERVED_AT,))]


def paused_scopes() -> dict[str, DispatchPause]:
    """What is paused now: ``*`` (everything) and/or report names."""
    return {p.scope: p for p in db.session.execute(_PAUSES).scalars()}


_PAUSES = sa.select(DispatchPause)
