"""The dashboard's Schedules view: every owner's schedules with filters, next and last run, overdue ones marked."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, make_response, render_template, request

from app.dashboard.access import OPERATOR, require_role
from app.errors import ApiError
from app.extensions import db
from app.jobs.models import utcnow
from app.reports import all_reports
from app.schedules.models import Schedule
from app.schedules.pages import card
from app.schedules.service import find_schedule, last_runs, set_enabled
from app.web.rendering import render_page_or_fragment, vary

bp = Blueprint("schedule_admin", __name__, url_prefix="/dashboard/schedules")

SHOWN = 200
STATUSES = ("enabled", "paused", "overdue")


@bp.before_request
def authorize() -> None:
    """Operators and viewers look; pausing and resuming needs the operator role."""
    g.role = require_role(act=request.method not in ("GET", "HEAD"))


@dataclass(frozen=True)
class ScheduleFilter:
    """The view's filters: exact owner, report, and enabled / paused / overdue."""

    owner: str = ""
    report: str = ""
    status: str = ""

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The filters as SQL conditions (overdue reads the due index: enabled, next fire time long past)."""
        conditions = []
        if self.owner:
            conditions.append(Schedule.owner == self.owner)
        if self.report:
            conditions.append(Schedule.report == self.report)
        if self.status in ("enabled", "overdue"):
            conditions.append(Schedule.enabled)  # as the due index says it (overdue reads that index)
        if self.status == "paused":
            conditions.append(sa.not_(Schedule.enabled))
        if self.status == "overdue":
            grace = timedelta(seconds=current_app.config["LONGRUN_MISFIRE_GRACE_SECONDS"])
            conditions.append(Schedule.next_fire_at < utcnow() - grace)
        return conditions


@bp.get("/")
def index() -> Response:
    """Schedules of every owner, soonest next run first (at most ``SHOWN``)."""
    f = ScheduleFilter(request.args.get("owner", "").strip()[:128], request.args.get("report", "")[:64],
                       request.args.get("status", "") if request.args.get("status") in STATUSES else "")
    schedules = list(db.session.execute(
        sa.select(Schedule).where(*f.where()).order_by(Schedule.next_fire_at.asc().nulls_last(), Schedule.id)
        .limit(SHOWN)).scalars())
    last = last_runs(schedules)
    context = {"cards": [card(s, last.get(s.id)) for s in schedules], "filters": f, "statuses": STATUSES,
               "reports": all_reports(), "shown": SHOWN, "role": g.role, "can_act": g.role == OPERATOR}
    return render_page_or_fragment("schedules/dashboard.html", "schedules/_admin_table.html", **context)


def _toggle(schedule_id: str, enabled: bool) -> Response:
    schedule = find_schedule(None, schedule_id)
    if schedule is None:
        raise ApiError(404, "Schedule Not Found", "There is no schedule with this id.", slug="schedule-not-found")
    schedule = set_enabled(schedule, enabled)
    row = card(schedule, last_runs([schedule]).get(schedule.id))
    return vary(make_response(render_template("schedules/_admin_row.html", c=row, can_act=True)))


@bp.post("/<schedule_id>/pause")
def pause(schedule_id: str) -> Response:
    """Pause anyone's schedule."""
    return _toggle(schedule_id, False)


@bp.post("/<schedule_id>/resume")
def resume(schedule_id: str) -> Response:
    """Resume anyone's schedule (from its next slot after now)."""
    return _toggle(schedule_id, True)


