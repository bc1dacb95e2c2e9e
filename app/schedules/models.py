"""A schedule: a report with its parameters, run on a cron expression in an IANA time zone."""
from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.jobs.models import UTCDateTime, utcnow
from app.jobs.priority import BACKGROUND

SKIP, RUN_ONCE = "skip", "run_once"
MISFIRE_POLICIES = (SKIP, RUN_ONCE)


class Schedule(db.Model):
    """One owner's recurring report; ``next_fire_at`` is the slot the clock fires next (while enabled)."""

    __tablename__ = "schedules"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(sa.String(128))
    report: Mapped[str] = mapped_column(sa.String(64))
    params: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    cron: Mapped[str] = mapped_column(sa.String(120))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    # What happens to slots missed while no clock ran: "skip" them, or "run_once" for the latest.
    misfire: Mapped[str] = mapped_column(sa.String(16), default=SKIP)
    priority: Mapped[int] = mapped_column(sa.SmallInteger, default=BACKGROUND)
    next_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the slot of the newest run
    last_job_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)  # no foreign key: purged jobs go away
    # Why the newest slot created no job (the report's parameters changed, for instance); None when it did.
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        # The clock's only question, "what is due?", reads this index from its start: the cost of a tick
        # follows the schedules due, not the schedules there are.
        sa.Index("ix_schedules_due", "next_fire_at", postgresql_where=sa.text("enabled"),
                 sqlite_where=sa.text("enabled")),
        sa.Index("ix_schedules_owner_created", "owner", "created_at", "id"),
        sa.CheckConstraint("misfire IN ('skip', 'run_once')", name="misfire"),
    )
