"""``/healthz`` (alive), ``/readyz`` (PostgreSQL and Redis reachable), ``/metrics`` (Prometheus)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from app.channels import redis_client
from app.dashboard.access import require_role
from app.errors import ApiError
from app.extensions import db
from app.ops.metrics import JobsCollector

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when PostgreSQL and Redis both answer; the failing one is named."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable ({exc.__class__.__name__})"
        db.session.rollback()
    finally:
        db.session.remove()
    try:
        redis_client(current_app.config["REDIS_URL"]).ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable ({exc.__class__.__name__})"
    failing = [name for name, status in checks.items() if status != "ok"]
    if failing:
        raise ApiError(503, "Service Unavailable", f"Not ready: {', '.join(failing)} unreachable.",
                       slug="not-ready", headers={"Retry-After": "5"}, extra={"checks": checks})
    return jsonify({"status": "ready", "checks": checks})


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format; local or operator credential unless LONGRUN_METRICS_PUBLIC=1."""
    if not current_app.config["LONGRUN_METRICS_PUBLIC"]:
        require_role()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector())
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})
