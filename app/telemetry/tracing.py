"""OpenTelemetry tracing, set up per process after fork; nothing is installed when no exporter is configured."""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from opentelemetry import trace

log = logging.getLogger(__name__)

# Long-lived or trivial routes stay out of request tracing.
EXCLUDED_URLS = "notifications,healthz,readyz,metrics,static"

_lock = threading.Lock()
_provider_pid: int | None = None
_provider = None


def _wanted_exporters() -> list[str]:
    """Exporter names from the standard variables; empty means tracing is off."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return []
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names and (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        names = ["otlp"]
    if os.environ.get("LONGRUN_OTEL_FILE"):
        names.append("file")
    return [n for n in names if n != "none"]


class JsonLinesSpanExporter:
    """Writes finished spans as JSON lines into one file per process (local debugging and tests)."""

    def __init__(self, directory: str) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.path = Path(directory) / f"spans-{os.getpid()}.jsonl"
        self._lock = threading.Lock()

    def export(self, spans: Sequence) -> object:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = []
        for span in spans:
            ctx = span.get_span_context()
            lines.append(json.dumps({
                "name": span.name,
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": format(ctx.span_id, "016x"),
                "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                "kind": span.kind.name,
                "service": span.resource.attributes.get("service.name"),
                "attributes": {k: v if isinstance(v, (str, int, float, bool)) else str(v)
                               for k, v in (span.attributes or {}).items()},
                "pid": os.getpid(),
            }))
        with self._lock, open(self.path, "a") as out:
            out.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Writes are synchronous."""
        return True


def init_tracing(app: Flask, role: str) -> bool:
    """Install the tracer provider and instrumentations in this process (idempotent per pid)."""
    global _provider, _provider_pid
    names = _wanted_exporters()
    if not names:
        return False
    with _lock:
        if _provider_pid == os.getpid():
            return True
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", f"longrun-{role}")})
        provider = TracerProvider(resource=resource)
        for name in names:
            if name == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            elif name == "console":
                provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
            elif name == "file":
                provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(os.environ["LONGRUN_OTEL_FILE"])))
            else:
                log.warning("unknown OTEL_TRACES_EXPORTER %r ignored", name)
        trace.set_tracer_provider(provider)
        _provider, _provider_pid = provider, os.getpid()
    _instrument(app, role)
    log.info("tracing on (%s) for %s", ", ".join(names), role)
    return True


def _instrument(app: Flask, role: str) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    from app.extensions import db

    if role == "web":
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app, excluded_urls=EXCLUDED_URLS)
    # Both sides: the web publishes (so the task joins the request's trace), the worker runs.
    CeleryInstrumentor().instrument()
    RedisInstrumentor().instrument()
    with app.app_context():
        SQLAlchemyInstrumentor().instrument(engines=list(db.engines.values()))


def flush_tracing() -> None:
    """Export what is buffered (worker shutdown: spans are lost otherwise)."""
    if _provider is not None and _provider_pid == os.getpid():
        _provider.force_flush(timeout_millis=5000)


def current_trace_id() -> str | None:
    """The active trace id as 32 hex digits, or None outside a recorded trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def current_trace_parent() -> str | None:
    """The active span as a W3C ``traceparent`` header value, to continue this trace later (None outside one)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


@contextmanager
def continued_trace(trace_parent: str | None) -> Iterator[None]:
    """Run the block as a child of ``trace_parent`` (a stored ``traceparent``), or as it is when there is none.

    A job may be handed to a worker long after, and in another process than, the request that created it:
    continuing the request's trace keeps one trace from the click to the result.
    """
    if not trace_parent or trace.get_current_span().get_span_context().is_valid:
        yield  # inside the creating request (or no trace): the current context is the right parent
        return
    from opentelemetry import context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    token = context.attach(TraceContextTextMapPropagator().extract({"traceparent": trace_parent}))
    try:
        yield
    finally:
        context.detach(token)
