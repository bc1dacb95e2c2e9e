"""Read models for the operator dashboard: filters, counts, throughput, stuck jobs (lists: app/jobs/listing.py)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from flask import current_app
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.jobs import counters
from app.jobs.listing import JobFilter
from app.jobs.models import Job, utcnow
from app.jobs.search import MIN_LENGTH
from app.jobs.states import JobState, parse_state
from app.jobs.throughput import UNITS, bucket_start, finished_since
from app.reports import all_reports

PAGE_SIZE = 25


def parse_filter(args: MultiDict) -> JobFilter:
    """The filters of a query string: ``state, report, owner, from, to, q``; bad values are reported, not fatal."""
    f = JobFilter()
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
    q = args.get("q", "").strip()[:200]
    if 0 < len(q) < MIN_LENGTH:
        f.errors.append(f"search needs at least {MIN_LENGTH} characters")
    f.q = q if len(q) >= MIN_LENGTH else None
    return f


def counts_panel() -> dict[str, Any]:
    """The live counts: jobs per state, per report and state (from the counters), and stalled jobs."""
    by_report = counters.jobs_per_report_and_state()
    return {"counts": counters.jobs_per_state(), "by_report": by_report, "stalled": stalled_count()}


@dataclass
class Series:
    """Succeeded/failed counts per time bucket, ready for a bar chart."""

    labels: list[str]
    succeeded: list[int]
    failed: list[int]

    @cached_property
    def peak(self) -> int:
        """The tallest bar (at least 1, to scale by)."""
        return max([1, *self.succeeded, *self.failed])


def throughput(unit: str, buckets: int) -> Series:
    """Succeeded and failed jobs per ``unit`` (minute or day) over the last ``buckets`` units, from the
    buckets counted at write time (at most buckets x states x shards rows, whatever the history)."""
    step = UNITS[unit]
    start = bucket_start(utcnow(), unit) - step * (buckets - 1)
    counts = finished_since(unit, start)
    starts = [start + step * i for i in range(buckets)]
    fmt = "%Y-%m-%d %H:%M" if unit == "minute" else "%Y-%m-%d"
    return Series(
        labels=[moment.strftime(fmt) for moment in starts],
        succeeded=[counts.get((moment, JobState.SUCCEEDED.value), 0) for moment in starts],
        failed=[counts.get((moment, JobState.FAILED.value), 0) for moment in starts],
    )


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
