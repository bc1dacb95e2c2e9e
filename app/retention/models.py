"""Daily roll-ups that outlive purged jobs, and tombstones that make a purged id answer 410."""
from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.jobs.models import UTCDateTime


class JobDailyCount(db.Model):
    """Purged jobs per day, report and final state, for the per-day chart (totals live in job_counters)."""

    __tablename__ = "job_daily_counts"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    report: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    state: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    jobs: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class PurgedJob(db.Model):
    """What is left of a job after retention or an operator removed it."""

    __tablename__ = "purged_jobs"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(128))
    report: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(16))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purged_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    reason: Mapped[str] = mapped_column(sa.String(32))  # retention | operator
