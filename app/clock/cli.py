"""``flask clock`` — the Procfile's ``clock`` process."""
from __future__ import annotations

import signal
import threading

from flask import Blueprint, current_app

from app.clock.runner import run_clock

bp = Blueprint("clock", __name__, cli_group=None)


@bp.cli.command("clock")
def clock_command() -> None:
    """Run the periodic duties (sweep, purge) until SIGTERM or Ctrl-C."""
    from app.ops.otlp import start_metrics_export
    from app.telemetry.tracing import init_tracing

    app = current_app._get_current_object()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    init_tracing(app, "clock")
    # One clock per cluster is the natural place for cluster-wide metrics over OTLP.
    start_metrics_export(app)
    run_clock(app, stop)
