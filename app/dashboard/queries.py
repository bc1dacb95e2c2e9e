"""Read models for the operator dashboard: counts, throughput, filtered job lists, stuck jobs."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from flask import current_app
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.jobs import counters
from app.jobs.models import Job, utcnow
from app.jobs.service import parse_job_id
from app.jobs.states import JobState, parse_state
from app.reports import all_reports
from app.retention.models import JobDailyCount

PAGE_SIZE = 25


@dataclass
class JobFilter:
    """The dashboard's filters, parsed from a query string; ``errors`` lists what could not be used."""

    state: JobState | None = None
    report: str | None = None
    owner: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    q: str | None = None
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: MultiDict) -> "JobFilter":
        """Parse ``state, report, owner, from, to, q``; bad values are reported, not fatal."""
        f = cls()
        if raw := args.get("state", "").strip():
            try:
                f.state = parse_state(raw)
            except ValueError as exc:
                f.errors.append(str(exc))
        if raw := args.get("report", "").strip():
            if raw in {r.name for r in all_reports()}:
                f.report = raw
            else:
                f.errors.append(f"unknown report {raw[:60]!r}")
        f.owner = args.get("owner", "").strip()[:128] or None
        for name, attr in (("from", "created_from"), ("to", "created_to")):
            if raw := args.get(name, "").strip():
                try:
                    value = datetime.fromisoformat(raw)
                    setattr(f, attr, value if value.tzinfo else value.replace(tzinfo=timezone.utc))
                except ValueError:
                    f.errors.append(f"'{name}' must be a date or date-time like 2026-01-31T12:00")
        f.q = args.get("q", "").strip()[:200] or None
        return f

    def as_args(self) -> dict[str, str]:
        """Back to query-string form (for links and the bulk confirmation)."""
        out = {"state": self.state.value if self.state else None, "report": self.report, "owner": self.owner,
               "from": self.created_from.isoformat() if self.created_from else None,
               "to": self.created_to.isoformat() if self.created_to else None, "q": self.q}
        return {k: v for k, v in out.items() if v}

    def apply(self, query: sa.Select) -> sa.Select:
        """Add the WHERE clauses to ``query``."""
        if self.state:
            query = query.where(Job.state == self.state.value)
        if self.report:
            query = query.where(Job.report == self.report)
        if self.owner:
            query = query.where(Job.owner == self.owner)
        if self.created_from:
            query = query.where(Job.created_at >= self.created_from)
        if self.created_to:
            query = query.where(Job.created_at <= self.created_to)
        if self.q:
            query = query.where(_search(self.q))
        return query


def _search(text: str) -> sa.ColumnElement[bool]:
    """Match a job id exactly, or the text inside its parameters or error message."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    clauses = [sa.cast(Job.params, sa.Text).ilike(pattern, escape="\\"),
               Job.error_message.ilike(pattern, escape="\\"), Job.error_type.ilike(pattern, escape="\\")]
    if (key := parse_job_id(text)) is not None:
        clauses.append(Job.id == key)
    return sa.or_(*clauses)


def counts_panel() -> dict[str, Any]:
    """The live counts: jobs per state, per report and state (from the counters), and stalled jobs."""
    by_report = counters.jobs_per_report_and_state()
    return {"counts": counters.jobs_per_state(), "by_report": by_report, "stalled": stalled_count()}


def _total(f: JobFilter, query: sa.Select) -> int:
    """Exact matches: from the counters when only state and report filter (O(1)), else counted."""
    if not (f.owner or f.created_from or f.created_to or f.q):
        per_state = counters.jobs_per_state(f.report)
        return per_state.get(f.state.value, 0) if f.state else sum(per_state.values())
    return db.session.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()


def find_jobs(f: JobFilter, page: int) -> tuple[list[Job], int]:
    """A page of jobs matching ``f`` (newest first) and the total."""
    query = f.apply(sa.select(Job))
    total = _total(f, query)
    rows = db.session.execute(
        query.order_by(Job.created_at.desc(), Job.id).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).scalars().all()
    return list(rows), total


def matching_ids(f: JobFilter, limit: int = 1000) -> list[uuid.UUID]:
    """Ids of jobs matching ``f`` (for bulk actions), oldest first."""
    query = f.apply(sa.select(Job.id)).order_by(Job.created_at).limit(limit)
    return list(db.session.execute(query).scalars())


def _bucket(column: Any, unit: str) -> Any:
    if db.engine.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.date_trunc(unit, column), "YYYY-MM-DD HH24:MI" if unit == "minute" else "YYYY-MM-DD")
    return sa.func.strftime("%Y-%m-%d %H:%M" if unit == "minute" else "%Y-%m-%d", column)


@dataclass
class Series:
    """Succeeded/failed counts per time bucket, ready for a bar chart."""

    labels: list[str]
    succeeded: list[int]
    failed: list[int]

    @property
    def peak(self) -> int:
        """The tallest bar (at least 1, to scale by)."""
        return max([1, *self.succeeded, *self.failed])


def throughput(unit: str, buckets: int) -> Series:
    """Succeeded and failed jobs per ``unit`` (minute or day) over the last ``buckets`` units."""
    step = timedelta(minutes=1) if unit == "minute" else timedelta(days=1)
    now = utcnow()
    start = now - step * (buckets - 1)
    start = start.replace(second=0, microsecond=0) if unit == "minute" else start.replace(hour=0, minute=0, second=0, microsecond=0)
    bucket = _bucket(Job.finished_at, unit).label("bucket")
    rows = db.session.execute(
        sa.select(bucket, Job.state, sa.func.count())
        .where(Job.finished_at >= start, Job.state.in_([JobState.SUCCEEDED.value, JobState.FAILED.value]))
        .group_by(bucket, Job.state)
    ).all()
    fmt = "%Y-%m-%d %H:%M" if unit == "minute" else "%Y-%m-%d"
    labels = [(start + step * i).strftime(fmt) for i in range(buckets)]
    counts = {(label, state): n for label, state, n in rows}
    extra = _rolled_up_days(start) if unit == "day" else {}
    return Series(
        labels=labels,
        succeeded=[counts.get((lb, "Succeeded"), 0) + extra.get((lb, "Succeeded"), 0) for lb in labels],
        failed=[counts.get((lb, "Failed"), 0) + extra.get((lb, "Failed"), 0) for lb in labels],
    )


def _rolled_up_days(start: datetime) -> dict[tuple[str, str], int]:
    """Daily counts of jobs already purged (kept by the retention roll-up)."""
    rows = db.session.execute(
        sa.select(JobDailyCount.day, JobDailyCount.state, sa.func.sum(JobDailyCount.jobs))
        .where(JobDailyCount.day >= start.date()).group_by(JobDailyCount.day, JobDailyCount.state)
    ).all()
    return {(day.strftime("%Y-%m-%d"), state): int(n) for day, state, n in rows}


def stuck_ids(jobs: list[Job]) -> set[str]:
    """Which of ``jobs`` look stuck: Processing without a fresh heartbeat, or waiting unusually long."""
    stale = timedelta(seconds=current_app.config["LONGRUN_STALE_AFTER_SECONDS"])
    now = utcnow()
    out = set()
    for job in jobs:
        if job.state == JobState.PROCESSING.value and (job.heartbeat_at is None or now - job.heartbeat_at > stale):
            out.add(str(job.id))
        elif job.state == JobState.ENQUEUED.value and now - job.created_at > timedelta(minutes=10):
            out.add(str(job.id))
    return out


def stalled_count() -> int:
    """Processing jobs whose worker stopped beating (the sweep will rescue them)."""
    stale = utcnow() - timedelta(seconds=current_app.config["LONGRUN_STALE_AFTER_SECONDS"])
    return db.session.execute(
        sa.select(sa.func.count()).select_from(Job)
        .where(Job.state == JobState.PROCESSING.value, sa.or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale))
    ).scalar_one()
