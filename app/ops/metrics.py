"""Prometheus metrics read from the job counters (cluster-wide, O(1) in history) plus Redis gauges."""
from __future__ import annotations

from collections.abc import Iterator

from flask import current_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from app.channels import Namespace, redis_client
from app.extensions import db
from app.jobs import counters
from app.jobs.counters import BUCKETS, INF, Delta, Key
from app.jobs.states import FINAL_STATES, JobState
from app.reports import all_reports

FINAL_NAMES = sorted(s.value for s in FINAL_STATES)


def job_families(totals: dict[Key, Delta], reports: list[str]) -> Iterator[Metric]:
    """The job metric families from counter totals; every report in ``reports`` appears, at zero if need be."""
    reports = sorted(set(reports) | {report for _, report, _ in totals})

    def value(name: str, report: str, label: str = "") -> int:
        return totals.get((name, report, label), (0, 0.0))[0]

    def counter(metric: str, doc: str, name: str) -> CounterMetricFamily:
        family = CounterMetricFamily(metric, doc, labels=["report"])
        for report in reports:
            family.add_metric([report], value(name, report))
        return family

    yield counter("longrun_jobs_created", "Jobs created.", counters.CREATED)
    done = CounterMetricFamily("longrun_jobs_finished", "Jobs that reached a final state (again after each retry).",
                               labels=["report", "state"])
    for report in reports:
        for state in FINAL_NAMES:
            done.add_metric([report, state], value(counters.FINISHED, report, state))
    yield done
    yield counter("longrun_jobs_started", "Jobs that started processing at least once.", counters.STARTED)
    yield counter("longrun_job_attempts", "Attempts started (retries included).", counters.ATTEMPTS)
    yield _histogram("longrun_job_duration_seconds", "Time from first start to the final state.",
                     counters.DURATION, totals, reports)
    yield _histogram("longrun_job_queue_wait_seconds", "Time from creation to first start.",
                     counters.QUEUE_WAIT, totals, reports)

    by_state = GaugeMetricFamily("longrun_jobs", "Jobs in the database per state.", labels=["state"])
    for state in JobState:
        by_state.add_metric([state.value], sum(value(counters.IN_STATE, r, state.value) for r in reports))
    yield by_state
    running = GaugeMetricFamily("longrun_jobs_in_progress", "Jobs processing now.", labels=["report"])
    for report in reports:
        running.add_metric([report], value(counters.IN_STATE, report, JobState.PROCESSING.value))
    yield running


def _histogram(metric: str, doc: str, name: str, totals: dict[Key, Delta], reports: list[str]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(metric, doc, labels=["report"])
    bounds = [*map(str, BUCKETS), INF]
    for report in reports:
        cumulative, running, total = [], 0, 0.0
        for bound in bounds:  # stored per bucket; Prometheus wants cumulative counts
            count, seconds = totals.get((name, report, bound), (0, 0.0))
            running += count
            total += seconds
            cumulative.append((bound, running))
        family.add_metric([report], cumulative, total)
    return family


class JobsCollector:
    """Reads every job metric from the counters at scrape time; nothing lives in one process's memory."""

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families (prometheus_client collector protocol)."""
        try:
            totals = counters.read_totals()
        finally:
            db.session.remove()
        yield from job_families(totals, [r.name for r in all_reports()])
        yield from self._redis_gauges()

    def _redis_gauges(self) -> Iterator[Metric]:
        queue, names = current_app.config["LONGRUN_QUEUE"], Namespace.of(current_app.config)
        up = GaugeMetricFamily("longrun_redis_up", "1 when Redis answered this scrape.")
        try:
            client = redis_client(current_app.config["REDIS_URL"])
            length = client.llen(names.queue_key(queue))
            keys = client.scan_iter(f"{names.socket_counts}*", count=500)
            sockets = sum(int(client.get(k) or 0) for k in keys)
        except Exception:
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
