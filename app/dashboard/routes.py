"""The operator dashboard: every job, live counts, throughput, workers, and actions one by one or in bulk."""
from __future__ import annotations

from flask import Blueprint, Response, abort, g, make_response, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from app.dashboard import queries, workers
from app.dashboard.access import OPERATOR, require_role
from app.errors import ApiError
from app.extensions import db
from app.jobs import listing
from app.jobs.cursor import BadPosition, Position, position
from app.jobs.models import Job, JobEvent
from app.jobs.priority import BACKGROUND
from app.jobs.search import COUNT_CAP
from app.jobs.service import JobConflict, cancel_job, find_job, retry_job
from app.reports import all_reports
from app.retention.purge import delete_job
from app.web.rendering import is_htmx, render_page_or_fragment, vary
from app.webhooks.routes import redeliver_or_404
from app.webhooks.service import deliveries_of

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

ACTIONS = ("cancel", "retry", "delete")
# One confirmation acts on the oldest BULK_LIMIT matches (a request of seconds); it counts up to COUNT_CAP.
BULK_LIMIT = 1000


@bp.before_request
def authorize() -> None:
    """Everyone here needs an operator role; acting needs the full one."""
    g.role = require_role(act=request.method not in ("GET", "HEAD"))


@bp.context_processor
def role_context() -> dict:
    return {"role": g.get("role"), "can_act": g.get("role") == OPERATOR}


def _position(f: listing.JobFilter) -> Position:
    """Where the requested page starts; a position we cannot use is reported with the filters' errors."""
    try:
        return position(request.args, queries.PAGE_SIZE)
    except BadPosition as exc:
        f.errors.append(str(exc))
        return Position()


@bp.get("/")
def index() -> Response:
    """Counts, throughput and the filtered job list (paged by key: older / newer)."""
    f = queries.parse_filter(request.args)
    at = _position(f)
    page, total = listing.read(f, before=at.before, after=at.after, offset=at.offset, per_page=queries.PAGE_SIZE)
    context = dict(
        **queries.counts_panel(), jobs=page.jobs, page=page, total=total, filters=f,
        stuck=queries.stuck_ids(page.jobs), reports=all_reports(), scan_limit=f"{listing.SCAN_LIMIT:,}",
        per_minute=queries.throughput("minute", 60), per_day=queries.throughput("day", 28),
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
    job = find_job(None, job_id)  # operators see every owner's jobs
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


@bp.get("/jobs/<job_id>/deliveries")
def job_deliveries(job_id: str) -> Response:
    """The job's webhook deliveries and their attempts (redeliver for operators)."""
    return vary(make_response(_deliveries(_job_or_404(job_id))))


@bp.post("/jobs/<job_id>/deliveries/<delivery_id>/redeliver")
def redeliver_delivery(job_id: str, delivery_id: str) -> tuple[Response, int]:
    """Send one of the job's deliveries again now."""
    job = _job_or_404(job_id)
    redeliver_or_404(job, delivery_id)
    return make_response(_deliveries(job)), 202


def _deliveries(job: Job) -> str:
    return render_template("webhooks/_deliveries.html", job=job, deliveries=deliveries_of(job),
                           source=url_for("dashboard.job_deliveries", job_id=str(job.id)),
                           redeliver="dashboard.redeliver_delivery" if g.get("role") == OPERATOR else None)


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


def _bulk_request(values: MultiDict) -> tuple[str, listing.JobFilter]:
    """The action and filters of a bulk request, or a 422 saying what is wrong."""
    action = values.get("action", "")
    if action not in ACTIONS:
        raise ApiError(422, "Invalid Request", f"action must be one of {', '.join(ACTIONS)}.", slug="validation-error")
    f = queries.parse_filter(values)
    if f.errors:
        raise ApiError(422, "Invalid Request", "; ".join(f.errors), slug="validation-error")
    return action, f


@bp.get("/bulk")
def bulk_preview() -> Response:
    """Say how many jobs an action would touch, and ask to confirm."""
    action, f = _bulk_request(request.args)
    total, _ = listing.bulk_targets(f, 0)
    return vary(make_response(render_template("dashboard/_bulk_confirm.html", action=action, total=total,
                                              refusal=_bulk_refusal(total), filters=f, limit=BULK_LIMIT)))


def _bulk_refusal(total: listing.Total) -> str | None:
    """Why a bulk action will not run (it must know exactly what it acts on), or None."""
    if total.exact and total.value <= COUNT_CAP:
        return None
    return (f"{str(total).capitalize()} jobs match: a bulk action needs an exact count, which is kept to "
            f"{COUNT_CAP:,} jobs at most. Narrow the filter (state, report, owner, time range) and try again.")


@bp.post("/bulk")
def bulk_apply() -> Response:
    """Apply an action to every job matching the filters (up to the limit)."""
    action, f = _bulk_request(request.form)
    total, targets = listing.bulk_targets(f, BULK_LIMIT)
    if (refusal := _bulk_refusal(total)) is not None:
        return vary(make_response(render_template("dashboard/_flash.html", message=refusal)))
    done, skipped = 0, 0
    for job_id in targets:
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
