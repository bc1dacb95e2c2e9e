"""Logging: one JSON object per line when configured, every line carrying the trace id and job id."""
from __future__ import annotations

import json
import logging
import os
from contextvars import ContextVar
from datetime import datetime, timezone

from app.telemetry.tracing import current_trace_id

current_job_id: ContextVar[str | None] = ContextVar("current_job_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s job=%(job_id)s]: %(message)s"


class ContextFilter(logging.Filter):
    """Stamp each record with the active trace id and the job being run."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = current_trace_id() or "-"
        record.job_id = current_job_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", None) if getattr(record, "trace_id", "-") != "-" else None,
            "job_id": getattr(record, "job_id", None) if getattr(record, "job_id", "-") != "-" else None,
            "pid": record.process,
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(force: bool = False) -> None:
    """Root logging for web, worker and CLI: ``LONGRUN_LOG_FORMAT=json`` or plain text; ``LONGRUN_LOG_LEVEL``."""
    root = logging.getLogger()
    if root.handlers and not force and not getattr(root, "_longrun", False):
        return
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if os.environ.get("LONGRUN_LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("LONGRUN_LOG_LEVEL", "INFO").upper())
    root._longrun = True  # type: ignore[attr-defined]
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
