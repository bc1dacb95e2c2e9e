"""My schedules (htmx): the create form built from the report's parameters, a live cron preview, runs."""
from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, make_response, render_template, request, url_for

from app.jobs.models import Job, utcnow
from app.jobs.view import JobView
from app.owners.identity import current_owner
from app.reports import all_reports, get_report
from app.reports.registry import Report, UnknownReport
from app.schedules.cron import CronInvalid, compile_cron
from app.schedules.models import MISFIRE_POLICIES, Schedule
from app.schedules.serializers import UPCOMING
from app.schedules.service import ScheduleInvalid, create_schedule, find_schedule, last_runs, overdue, runs, spec_of
from app.web.pages import form_params
from app.web.rendering import is_htmx, render_page_or_fragment, vary

bp = Blueprint("schedule_pages", __name__)


@cache
def zone_names() -> list[str]:
    """Every IANA zone this machine knows, for the zone field's suggestions."""
    return sorted(zoneinfo.available_timezones())


def card(schedule: Schedule, last: Job | None = None) -> dict[str, Any]:
    """What ``schedules/_summary.html`` shows of one schedule."""
    spec = spec_of(schedule)
    return {"s": schedule, "description": spec.describe(), "tz": spec.tz,
            "last": JobView.from_job(last) if last is not None else None, "overdue": overdue(schedule, utcnow())}


def form_context(report: Report, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    """The create form's context: the report's fields, the schedule's own fields, their errors."""
    values = values or {}
    errors = errors or {}
    own = {"report", "cron", "timezone", "misfire", "enabled"}
    return {"reports": all_reports(), "report": report, "values": values, "zones": zone_names(),
            "misfires": MISFIRE_POLICIES, "errors": errors,
            "param_errors": {k: v for k, v in errors.items() if k not in own}}


def schedules_page(schedules: list[Schedule], last: dict) -> Response:
    """My schedules: the create form and every schedule (a page, or the list fragment for htmx)."""
    cards = [card(s, last.get(s.id)) for s in schedules]
    return render_page_or_fragment("schedules/list.html", "schedules/_list.html", cards=cards,
                                   **form_context(get_report("demo"), {"cron": "0 7 * * MON", "timezone": "UTC"}))


def schedule_page(schedule: Schedule, recent: list[Job]) -> Response:
    """One schedule with its runs (a page, or the runs fragment that refreshes itself)."""
    context = card(schedule, recent[0] if recent else None)
    fires = spec_of(schedule).upcoming(utcnow(), UPCOMING) if schedule.enabled else []
    return render_page_or_fragment("schedules/page.html", "schedules/_runs.html", fires=fires, **context,
                                   **runs_context(recent))


def runs_context(recent: list[Job]) -> dict[str, Any]:
    """The runs table: each run's job, and the newest one with a result to download."""
    newest = next((j for j in recent if j.state == "Succeeded" and j.result is not None), None)
    return {"jobs": recent, "newest_result": newest}


def summary_fragment(schedule: Schedule, ran: Job | None = None) -> Response:
    """The schedule's card after an action (``ran``: the job a run-now just created)."""
    last = ran or last_runs([schedule]).get(schedule.id)
    return vary(make_response(render_template("schedules/_summary.html", **card(schedule, last))))


def deleted(schedule_id: str) -> Response:
    """An htmx delete: the card goes away (on the schedule's own page: back to the list)."""
    response = make_response("", 200)
    if urlsplit(request.headers.get("HX-Current-URL", "")).path.rstrip("/").endswith(schedule_id):
        response.headers["HX-Redirect"] = url_for("schedules.list_my_schedules")
    return response


def _report_or_demo(name: str | None) -> Report:
    try:
        return get_report(name or "demo")
    except UnknownReport:
        return get_report("demo")


@bp.get("/schedules/form")
def schedule_form() -> Response:
    """The create form for another report (swapped in when the report select changes)."""
    values = {k: request.args.get(k, "") for k in ("cron", "timezone", "misfire")}
    return vary(make_response(render_template("schedules/_form.html",
                                              **form_context(_report_or_demo(request.args.get("report")), values))))


@bp.get("/schedules/preview")
def preview() -> Response:
    """The cron field's live preview: description and next fire times, or what is wrong."""
    now = utcnow()
    try:
        spec = compile_cron(request.args.get("cron", ""), request.args.get("timezone") or "UTC", now)
    except CronInvalid as exc:
        return vary(make_response(render_template("schedules/_preview.html", error=f"{exc.field}: {exc.message}")))
    return vary(make_response(render_template("schedules/_preview.html", description=spec.describe(),
                                              fires=spec.upcoming(now, UPCOMING), tz=spec.tz)))


@bp.post("/schedules/new")
def create_from_form() -> Response:
    """Create a schedule from the form; re-render it with inline errors (422) if something is not valid."""
    report = _report_or_demo(request.form.get("report"))
    values = {k: v for k, v in request.form.items() if k != "csrf_token"}
    body = {"report": request.form.get("report", ""), "params": form_params(report),
            "cron": request.form.get("cron", ""), "timezone": request.form.get("timezone") or "UTC",
            "misfire": request.form.get("misfire", "skip"), "enabled": "enabled" in request.form}
    try:
        schedule = create_schedule(current_owner(), body)
    except ScheduleInvalid as exc:
        errors = {e["field"].removeprefix("params."): e["message"] for e in exc.errors}
        return vary(make_response(render_template("schedules/_form.html", **form_context(report, values, errors)), 422))
    target = url_for("schedules.get_schedule", schedule_id=str(schedule.id))
    if is_htmx():
        response = make_response("", 201)
        response.headers["HX-Redirect"] = target
        return response
    return make_response("", 303, {"Location": target})


@bp.get("/schedules/<schedule_id>/runs")
def runs_fragment(schedule_id: str) -> Response:
    """The schedule's runs (polled by its page)."""
    schedule = find_schedule(current_owner(), schedule_id)
    if schedule is None:
        return make_response("", 404)
    return vary(make_response(render_template("schedules/_runs.html", s=schedule, **runs_context(runs(schedule.id)))))

