"""Prometheus metrics derived from PostgreSQL (cluster-wide truth) plus Redis for queue and socket gauges."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import current_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from app.extensions import db
from app.jobs.models import Job
from app.jobs.states import FINAL_STATES, JobState
from app.realtime.channels import SOCKET_COUNT_PREFIX, redis_client
from app.retention.models import JobDailyCount
from app.retention.purge import BUCKETS


def _seconds_between(start: Any, end: Any) -> Any:
    if db.engine.dialect.name == "postgresql":
        return sa.func.extract("epoch", end - start)
    return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0


def _histogram_rows(start: Any, end: Any, where: Any) -> dict[str, tuple[list[int], float]]:
    """Per report: cumulative bucket counts (one per bound, then +Inf) and the sum, from live rows."""
    seconds = _seconds_between(start, end)
    columns = [sa.func.sum(sa.case((seconds <= b, 1), else_=0)) for b in BUCKETS]
    rows = db.session.execute(
        sa.select(Job.report, *columns, sa.func.count(), sa.func.coalesce(sa.func.sum(seconds), 0.0))
        .where(where).group_by(Job.report)
    ).all()
    return {r[0]: ([int(v or 0) for v in r[1:-1]], float(r[-1] or 0.0)) for r in rows}


def _add_rollup(live: dict, report: str, buckets: dict[str, int], total_sum: float) -> None:
    counts, s = live.get(report, ([0] * (len(BUCKETS) + 1), 0.0))
    counts = list(counts)
    running = 0
    for i, bound in enumerate([*map(str, BUCKETS), "+Inf"]):
        running += int(buckets.get(bound, 0))
        counts[i] += running  # roll-up buckets are per-bucket; Prometheus wants cumulative
    live[report] = (counts, s + total_sum)


def _histogram(name: str, doc: str, data: dict[str, tuple[list[int], float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["report"])
    for report, (counts, total) in sorted(data.items()):
        bounds = [*map(str, BUCKETS), "+Inf"]
        family.add_metric([report], list(zip(bounds, counts)), total)
    return family


class JobsCollector:
    """Computes every metric at scrape time; nothing lives in one process's memory."""

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families (prometheus_client collector protocol)."""
        finals = [s.value for s in FINAL_STATES]
        finished: dict[tuple[str, str], int] = defaultdict(int)
        attempts: dict[str, int] = defaultdict(int)
        started: dict[str, int] = defaultdict(int)
        for report, state, n, tries, began in db.session.execute(
            sa.select(Job.report, Job.state, sa.func.count(), sa.func.coalesce(sa.func.sum(Job.attempts), 0),
                      sa.func.count(Job.started_at)).group_by(Job.report, Job.state)
        ):
            if state in finals:
                finished[(report, state)] += n
            attempts[report] += int(tries)
            started[report] += int(began)
        durations = _histogram_rows(Job.started_at, Job.finished_at,
                                    sa.and_(Job.state.in_(finals), Job.started_at.isnot(None)))
        waits = _histogram_rows(Job.created_at, Job.started_at, Job.started_at.isnot(None))
        for row in db.session.execute(sa.select(JobDailyCount)).scalars():
            finished[(row.report, row.state)] += row.jobs
            attempts[row.report] += row.attempts
            started[row.report] += sum(int(v) for v in (row.wait_buckets or {}).values())
            _add_rollup(durations, row.report, row.duration_buckets or {}, row.duration_sum)
            _add_rollup(waits, row.report, row.wait_buckets or {}, row.wait_sum)

        done = CounterMetricFamily("longrun_jobs_finished", "Jobs that reached a final state.", labels=["report", "state"])
        for (report, state), n in sorted(finished.items()):
            done.add_metric([report, state], n)
        yield done
        runs = CounterMetricFamily("longrun_jobs_started", "Jobs that started processing at least once.", labels=["report"])
        tries = CounterMetricFamily("longrun_job_attempts", "Attempts started (retries included).", labels=["report"])
        for report in sorted(set(started) | set(attempts)):
            runs.add_metric([report], started[report])
            tries.add_metric([report], attempts[report])
        yield runs
        yield tries
        yield _histogram("longrun_job_duration_seconds", "Time from first start to the final state.", durations)
        yield _histogram("longrun_job_queue_wait_seconds", "Time from creation to first start.", waits)

        by_state = GaugeMetricFamily("longrun_jobs", "Jobs in the database per state.", labels=["state"])
        counts = dict(db.session.execute(sa.select(Job.state, sa.func.count()).group_by(Job.state)).all())
        for state in JobState:
            by_state.add_metric([state.value], counts.get(state.value, 0))
        yield by_state
        running = GaugeMetricFamily("longrun_jobs_in_progress", "Jobs processing now.", labels=["report"])
        for report, n in db.session.execute(
            sa.select(Job.report, sa.func.count()).where(Job.state == JobState.PROCESSING.value).group_by(Job.report)
        ):
            running.add_metric([report], n)
        yield running
        db.session.remove()
        yield from self._redis_gauges()

    def _redis_gauges(self) -> Iterator[Metric]:
        queue = current_app.config["LONGRUN_QUEUE"]
        up = GaugeMetricFamily("longrun_redis_up", "1 when Redis answered this scrape.")
        try:
            client = redis_client(current_app.config["REDIS_URL"])
            length = client.llen(queue)
            sockets = sum(int(client.get(k) or 0) for k in client.scan_iter(f"{SOCKET_COUNT_PREFIX}*", count=500))
        except Exception:  # noqa: BLE001 - metrics must render with Redis down
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        gauge = GaugeMetricFamily("longrun_queue_length", "Messages waiting in the queue.", labels=["queue"])
        gauge.add_metric([queue], length)
        yield gauge
        yield GaugeMetricFamily("longrun_notification_sockets", "Open /notifications sockets, all web processes.",
                                value=sockets)
