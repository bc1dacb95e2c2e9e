"""OTLP export of the same metrics /metrics serves, from the clock process (once per cluster)."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from flask import Flask

log = logging.getLogger(__name__)


def wanted() -> bool:
    """Export when an OTLP endpoint is configured for metrics (standard variables)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = os.environ.get("OTEL_METRICS_EXPORTER", "")
    if exporter == "none":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or exporter == "otlp")


def start_metrics_export(app: Flask) -> bool:
    """Register observable instruments fed by ``JobsCollector`` and export them periodically."""
    if not wanted():
        return False
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    from app.ops.metrics import JobsCollector

    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    provider = MeterProvider(metric_readers=[reader],
                             resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "longrun")}))
    meter = provider.get_meter("longrun")

    def samples() -> list:
        with app.app_context():
            return [s for family in JobsCollector().collect() for s in family.samples]

    def observe(names: set[str]):
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            try:
                return [Observation(s.value, dict(s.labels)) for s in samples() if s.name in names]
            except Exception:
                log.warning("metrics collection for OTLP failed", exc_info=True)
                return []
        return callback

    with app.app_context():
        families = list(JobsCollector().collect())
    for family in families:
        if family.type == "counter":
            meter.create_observable_counter(family.name, [observe({family.name + "_total"})], description=family.documentation)
        elif family.type == "gauge":
            meter.create_observable_gauge(family.name, [observe({family.name})], description=family.documentation)
        elif family.type == "histogram":  # OTel has no observable histogram: export its count and sum
            meter.create_observable_counter(family.name + "_count", [observe({family.name + "_count"})])
            meter.create_observable_counter(family.name + "_sum", [observe({family.name + "_sum"})])
    app.extensions["longrun.meter_provider"] = provider
    log.info("exporting metrics over OTLP")
    return True
