"""Steering dispatch: pause and resume (everything or one report), and each owner's line — JSON and htmx."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, g, jsonify, render_template, request

from app.api.body import read_json_object
from app.dashboard.access import require_role
from app.errors import ApiError
from app.extensions import db
from app.jobs import dispatch
from app.jobs.capacity import capacity
from app.jobs.models import utcnow
from app.jobs.slots import ALL_REPORTS, DispatchPause, OwnerQueue, paused_scopes
from app.reports import all_reports
from app.web.rendering import is_htmx, vary

bp = Blueprint("dispatch", __name__, url_prefix="/dispatch")

BUSIEST_OWNERS = 50


@bp.before_request
def authorize() -> None:
    """Operators only; changing anything needs the full operator role."""
    g.role = require_role(act=request.method not in ("GET", "HEAD"))


def dispatch_status() -> dict[str, Any]:
    """What is paused since when, worker slots, jobs in flight, and the busiest owners' lines."""
    owners = db.session.execute(
        sa.select(OwnerQueue).where(sa.or_(OwnerQueue.waiting > 0, OwnerQueue.inflight > 0))
        .order_by(OwnerQueue.waiting.desc(), OwnerQueue.owner).limit(BUSIEST_OWNERS)
    ).scalars()
    return {
        "paused": [{"scope": p.scope, "paused_at": p.paused_at.isoformat(), "paused_by": p.paused_by}
                   for p in sorted(paused_scopes().values(), key=lambda p: p.scope)],
        "capacity": capacity(),
        "in_flight": dispatch.in_flight(),
        "owners": [{"owner": o.owner, "waiting": o.waiting, "running": o.inflight} for o in owners],
    }


def _answer() -> Response:
    status = dispatch_status()
    if is_htmx():
        return vary(Response(render_template("dashboard/_dispatch.html", dispatch=status,
                                             reports=all_reports(), can_act=g.role == "operator")))
    return vary(jsonify(status))


def _scope() -> str:
    """``*`` for everything, or a registered report's name, from a JSON body or a form."""
    raw = request.form.get("report") if request.form else read_json_object({"report"}).get("report")
    if raw in (None, "", ALL_REPORTS):
        return ALL_REPORTS
    if not isinstance(raw, str) or raw not in {r.name for r in all_reports()}:
        raise ApiError(422, "Unknown Report", "'report' must be the name of a registered report (or left out to "
                       "pause every report).", slug="unknown-report",
                       errors=[{"field": "report", "message": "unknown report"}])
    return raw


@bp.get("")
def status() -> Response:
    """Dispatch as it stands."""
    return _answer()


@bp.post("/pause")
def pause() -> Response:
    """Stop handing out waiting jobs (of one report, or all): running jobs finish, waiting ones stay waiting."""
    scope = _scope()
    if db.session.get(DispatchPause, scope) is None:
        db.session.add(DispatchPause(scope=scope, paused_at=utcnow(), paused_by=g.role))
        db.session.commit()
        dispatch.announce_queue_moved()  # waiting jobs now show "paused"
    return _answer()


@bp.post("/resume")
def resume() -> Response:
    """Hand out waiting jobs again, in the order they would have gone."""
    scope = _scope()
    db.session.execute(sa.delete(DispatchPause).where(DispatchPause.scope == scope))
    db.session.commit()
    dispatch.dispatch_quietly()
    dispatch.announce_queue_moved()
    return _answer()
