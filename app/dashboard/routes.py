"""The operator dashboard: every job, live counts, throughput, workers, and actions one by one or in bulk."""
from __future__ import annotations

from flask import Blueprint, Response, abort, g, make_response, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from app.dashboard import queries, workers
from app.dashboard.access import OPERATOR, require_role
from app.errors import ApiError
from app.extensions import db
from app.jobs.models import Job, JobEvent
from app.jobs.priority import BACKGROUND
from app.jobs.service import JobConflict, cancel_job, delete_job, parse_job_id, retry_job
from app.reports import all_reports
from app.web.rendering import is_htmx, render_page_or_fragment, vary

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

ACTIONS = ("cancel", "retry", "delete")
BULK_LIMIT = 1000


@bp.before_request
def authorize() -> None:
    """Everyone here needs an operator role; acting needs the full one."""
    g.role = require_role(act=request.method not in ("GET", "HEAD"))


@bp.context_processor
def role_context() -> dict:
    return {"role": g.get("role"), "can_act": g.get("role") == OPERATOR}


def _page() -> int:
    raw = request.args.get("page", "1")
    return max(1, min(int(raw), 100_000)) if raw.isdigit() else 1


@bp.get("/")
def index() -> Response:
    """Counts, throughput and the filtered job list."""
    f = queries.JobFilter.from_args(request.args)
    page = _page()
    jobs, total = queries.find_jobs(f, page)
    context = dict(
        **queries.counts_panel(), jobs=jobs, total=total, page=page,
        pages=max(1, -(-total // queries.PAGE_SIZE)), filters=f, stuck=queries.stuck_ids(jobs),
        reports=all_reports(), per_minute=queries.throughput("minute", 60), per_day=queries.throughput("day", 28),
    )
    if is_htmx() and request.headers.get("HX-Target") == "job-table":
        return vary(make_response(render_template("dashboard/_jobs.html", **context)))
    return render_page_or_fragment("dashboard/index.html", "dashboard/index.html", **context)


@bp.get("/counts")
def counts() -> Response:
    """The per-state and per-report counts, polled every two seconds."""
    return vary(make_response(render_template("dashboard/_counts.html", **queries.counts_panel())))


@bp.get("/workers")
def worker_panel() -> Response:
    """Workers and queue lengths (Celery inspect with a one-second timeout)."""
    nodes, worker_error = workers.workers()
    queues, queue_error = workers.queue_lengths()
    return vary(make_response(render_template("dashboard/_workers.html", nodes=nodes, queues=queues,
                                              worker_error=worker_error, queue_error=queue_error)))


def _job_or_404(job_id: str) -> Job:
    key = parse_job_id(job_id)
    job = db.session.get(Job, key) if key else None
    if job is None:
        raise ApiError(404, "Job Not Found", "There is no job with this id.", slug="job-not-found")
    return job


@bp.get("/jobs/<job_id>")
def job_detail(job_id: str) -> Response:
    """One job with its full history, attempts and traceback."""
    job = _job_or_404(job_id)
    events = db.session.execute(
        db.select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.seq)
    ).scalars().all()
    return render_page_or_fragment("dashboard/job.html", "dashboard/job.html", job=job, events=events,
                                   stuck=queries.stuck_ids([job]))


def _act(job: Job, action: str, bulk: bool = False) -> None:
    """Apply one operator action (``JobConflict`` when the job's state does not allow it).

    A bulk retry is background work: it goes back in line at low priority, behind what people wait for.
    """
    if action == "cancel":
        cancel_job(job, by="operator")
    elif action == "retry":
        retry_job(job, by="operator", priority=BACKGROUND if bulk else None)
    else:
        delete_job(job)


@bp.post("/jobs/<job_id>/<action>")
def job_action(job_id: str, action: str) -> Response:
    """Cancel, retry or delete one job."""
    if action not in ACTIONS:
        abort(404)
    _act(_job_or_404(job_id), action)  # JobConflict answers 409 (app.errors)
    if action == "delete":
        if is_htmx():
            response = make_response("", 200)
            response.headers["HX-Redirect"] = url_for("dashboard.index")
            return response
        return redirect(url_for("dashboard.index"), 303)
    if is_htmx():
        return job_detail(job_id)
    return redirect(url_for("dashboard.job_detail", job_id=job_id), 303)


def _bulk_request(values: MultiDict) -> tuple[str, queries.JobFilter]:
    """The action and filters of a bulk request, or a 422 saying what is wrong."""
    action = values.get("action", "")
    if action not in ACTIONS:
        raise ApiError(422, "Invalid Request", f"action must be one of {', '.join(ACTIONS)}.", slug="validation-error")
    f = queries.JobFilter.from_args(values)
    if f.errors:
        raise ApiError(422, "Invalid Request", "; ".join(f.errors), slug="validation-error")
    return action, f


@bp.get("/bulk")
def bulk_preview() -> Response:
    """Say how many jobs an action would touch, and ask to confirm."""
    action, f = _bulk_request(request.args)
    count = len(queries.matching_ids(f, BULK_LIMIT))
    return vary(make_response(render_template("dashboard/_bulk_confirm.html", action=action, count=count,
                                              filters=f, limit=BULK_LIMIT)))


@bp.post("/bulk")
def bulk_apply() -> Response:
    """Apply an action to every job matching the filters (up to the limit)."""
    action, f = _bulk_request(request.form)
    done, skipped = 0, 0
    for job_id in queries.matching_ids(f, BULK_LIMIT):
        job = db.session.get(Job, job_id)
        if job is None:
            continue
        try:
            _act(job, action, bulk=True)
            done += 1
        except JobConflict:
            skipped += 1
    message = f"{action.capitalize()}: {done} job(s) done" + (f", {skipped} skipped (state did not allow it)" if skipped else "") + "."
    response = make_response(render_template("dashboard/_flash.html", message=message))
    response.headers["HX-Trigger"] = "jobs-changed"
    return vary(response)
