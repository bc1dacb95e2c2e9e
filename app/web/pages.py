"""The user's pages: home (the seed's three panels and a report form), job page, my jobs."""
from __future__ import annotations

from typing import Any

from flask import Response, current_app, make_response, redirect, render_template, request, url_for

from app.extensions import db
from app.jobs import listing
from app.jobs.later import RunAtInvalid, form_number, requested_due
from app.jobs.listing import JobFilter
from app.jobs.models import Job, JobEvent
from app.jobs.position import queue_place
from app.jobs.service import IdempotencyMismatch, submit_job
from app.jobs.view import JobView
from app.owners.identity import current_owner
from app.reports import all_reports, get_report
from app.reports.params import ParamsInvalid
from app.reports.registry import Report, UnknownReport
from app.web import bp
from app.web.rendering import is_htmx, render_page_or_fragment, vary

MY_JOBS_PAGE = 10


def history(job: Job) -> list[JobEvent]:
    """The job's state changes and log lines, oldest first (progress samples are in the bar)."""
    return list(db.session.execute(
        db.select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.kind != "progress").order_by(JobEvent.seq)
    ).scalars())


def states_seen(events: list[JobEvent]) -> list[str]:
    """The sequence of states the job went through (repeats collapsed)."""
    out: list[str] = []
    for event in events:
        if event.kind == "state" and (not out or out[-1] != event.state):
            out.append(event.state)
    return out


def status_context(job: Job) -> dict[str, Any]:
    """What ``jobs/_status.html`` needs when rendered from the database."""
    events = history(job)
    return {"view": JobView.from_job(job, queue_place(job)), "states": states_seen(events), "events": events}


@bp.get("/")
def home() -> Response:
    """The seed's three approaches side by side, a form for any report, and my recent jobs."""
    page, total = listing.read(JobFilter(owner=current_owner()), per_page=MY_JOBS_PAGE)
    reports = all_reports()
    wanted = request.args.get("report")
    chosen = get_report(wanted) if wanted in {r.name for r in reports} else get_report("demo")
    return make_response(render_template("home.html", reports=reports, report=chosen, values={}, errors={},
                                         jobs=[JobView.from_job(j) for j in page.jobs], total=total,
                                         v1_seconds=current_app.config["LONGRUN_V1_SECONDS"]))


@bp.get("/reports/form")
def report_form() -> Response:
    """The parameter fields of one report (swapped in when the report select changes)."""
    try:
        report = get_report(request.args.get("report", "demo"))
    except UnknownReport:
        report = get_report("demo")
    return vary(make_response(render_template("reports/_form.html", reports=all_reports(), report=report,
                                              values={}, errors={})))


def form_params(report: Report) -> dict[str, Any]:
    """Form fields to raw parameters (validation happens in the report's schema)."""
    raw: dict[str, Any] = {}
    for param in report.params:
        if param.kind is bool:
            raw[param.name] = param.name in request.form
        elif request.form.get(param.name, "") != "":
            raw[param.name] = request.form[param.name]
    return raw


@bp.post("/jobs/new")
def start_from_form() -> Response:
    """Start a report from the form; re-render the form with inline errors if it is not valid."""
    report_name = request.form.get("report", "demo")
    try:
        report = get_report(report_name)
    except UnknownReport as exc:
        return _form_error(get_report("demo"), {}, {"report": str(exc)})
    values = {k: v for k, v in request.form.items() if k not in {"csrf_token", "report"}}
    try:
        run_at = requested_due(current_app.config, request.form.get("run_at") or None,
                               form_number(request.form.get("delay_seconds", "")))
        submission = submit_job(current_owner(), report.name, form_params(report), api_version="v3", run_at=run_at)
    except RunAtInvalid as exc:
        return _form_error(report, values, {exc.field: exc.message})
    except ParamsInvalid as exc:
        errors = {e["field"].removeprefix("params."): e["message"] for e in exc.errors}
        return _form_error(report, values, errors)
    except IdempotencyMismatch:  # no key is sent by the form; kept for completeness
        return _form_error(report, values, {"report": "this request was already made with other values"})

    target = url_for("api.get_job", job_id=str(submission.job.id))
    if is_htmx():
        response = make_response("", 201)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, 303)


def _form_error(report: Report, values: dict, errors: dict[str, str]) -> Response:
    template = "reports/_form.html" if is_htmx() else "home.html"
    page, total = (listing.Page([]), listing.Total(0)) if is_htmx() else listing.read(JobFilter(owner=current_owner()),
                                                                       per_page=MY_JOBS_PAGE)
    return vary(make_response(render_template(template, reports=all_reports(), report=report, values=values,
                                              errors=errors, jobs=[JobView.from_job(j) for j in page.jobs],
                                              total=total, v1_seconds=current_app.config["LONGRUN_V1_SECONDS"]), 422))


def job_page(job: Job) -> Response:
    """A job as a page (browsers) or as its self-polling status fragment (htmx polls)."""
    return render_page_or_fragment("jobs/page.html", "jobs/_status_poll.html", poll=True, **status_context(job))


def jobs_page(page: listing.Page, total: listing.Total, args: dict[str, Any]) -> Response:
    """My jobs, as a page or as the list fragment that refreshes itself (links by key: older / newer)."""
    views = [JobView.from_job(j) for j in page.jobs]
    return render_page_or_fragment("jobs/list.html", "jobs/_list.html", jobs=views, total=total, page=page,
                                   list_args=args, self_url=request.full_path.rstrip("?"))


def enqueued_fragment(job: Job, api_version: str) -> Response:
    """What the V2 (polling) and V3 (live) panels swap in after starting a job."""
    template = "reports/_v3_job.html" if api_version == "v3" else "reports/_v2_job.html"
    response = vary(make_response(render_template(template, poll=api_version != "v3", **status_context(job)), 202))
    response.headers["HX-Trigger"] = "jobs-changed"
    return response


def v1_fragment(seconds: float) -> Response:
    """The V1 panel's answer."""
    return vary(make_response(render_template("reports/_v1_result.html", seconds=seconds)))
