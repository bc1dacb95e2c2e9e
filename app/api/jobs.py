"""The jobs resource: status, list, history, cancel, retry, result download."""
from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from flask import Response, jsonify, request, stream_with_context, url_for

from app.api import bp
from app.api.body import query_int
from app.api.serializers import event_json, job_json
from app.errors import ApiError
from app.extensions import db
from app.jobs import listing
from app.jobs.cursor import BadPosition, Position, position
from app.jobs.listing import JobFilter
from app.jobs.models import Job, JobEvent, JobResult
from app.jobs.position import queue_place
from app.jobs.results import read_range, requested_range
from app.jobs.service import cancel_job, find_job, retry_job
from app.jobs.states import parse_state
from app.owners.capability import ACCESS_PARAM, grants_read
from app.owners.identity import current_owner
from app.reports import get_report
from app.reports.registry import UnknownReport
from app.retention.purge import purged_job
from app.web import pages
from app.web.rendering import is_htmx, vary, wants_page


def owned_job_or_404(job_id: str) -> Job:
    """The caller's job, or a 404 that looks the same for unknown and foreign ids."""
    return _job_or_404(current_owner(), job_id)


def readable_job_or_404(job_id: str) -> tuple[Job, str | None]:
    """The job the caller owns or presents the read capability of (``?access=``), and that capability.

    The capability comes back None when the caller owns the job anyway; a wrong one changes nothing, so
    the answer is the same 404 as for an unknown id.
    """
    token = request.args.get(ACCESS_PARAM)
    if token and grants_read(job_id, [token]):
        job = _job_or_404(None, job_id)
        return job, (None if job.owner == current_owner() else token)
    return owned_job_or_404(job_id), None


def _job_or_404(owner: str | None, job_id: str) -> Job:
    job = find_job(owner, job_id)
    if job is None:
        gone = purged_job(owner, job_id)
        if gone is not None:
            why = "after the retention period" if gone.reason == "retention" else "by an operator"
            raise ApiError(410, "Gone", f"This job ended as {gone.state} and was removed on "
                           f"{gone.purged_at:%Y-%m-%d %H:%M} UTC {why}.", slug="job-purged")
        raise ApiError(404, "Job Not Found", "There is no job with this id among your jobs.", slug="job-not-found")
    return job


@bp.get("/jobs")
def list_my_jobs() -> Response:
    """The caller's jobs, newest first; ``?state=&report=&per_page=`` and ``before=``/``after=`` (or ``page=``)."""
    state = None
    if raw_state := request.args.get("state"):
        try:
            state = parse_state(raw_state)
        except ValueError as exc:
            raise ApiError(422, "Invalid Request", str(exc), slug="validation-error",
                           errors=[{"field": "state", "message": str(exc)}]) from None
    report = request.args.get("report") or None
    if report is not None:
        try:
            get_report(report)
        except UnknownReport as exc:
            raise ApiError(422, "Invalid Request", str(exc)[:300], slug="validation-error",
                           errors=[{"field": "report", "message": "unknown report"}]) from None
    per_page = query_int("per_page", 20, 1, 100)
    query_int("page", 1, 1, 1_000_000)  # a malformed page= is a 422 like any bad parameter
    try:
        at = position(request.args, per_page)
    except BadPosition as exc:
        # Like a page past the end of a list: that page does not exist (Django REST framework answers 404 too).
        raise ApiError(404, "Page Not Found", str(exc), slug="page-not-found",
                       errors=[{"field": exc.field, "message": str(exc)}]) from None
    f = JobFilter(owner=current_owner(), state=state, report=report)
    page, total = listing.read(f, before=at.before, after=at.after, offset=at.offset, per_page=per_page)
    args = {k: v for k, v in {"state": raw_state, "report": report, "per_page": per_page}.items() if v}
    if wants_page():
        return pages.jobs_page(page, total, args)
    return vary(jsonify(_list_json(page, total, at, per_page, args)))


def _list_json(page: listing.Page, total: listing.Total, at: Position, per_page: int, args: dict) -> dict:
    """A page of the caller's jobs with links by key (``next``: older, ``prev``: newer) and its total."""
    links = {"self": request.full_path.rstrip("?"), "first": url_for("api.list_my_jobs", **args)}
    if page.older:
        links["next"] = url_for("api.list_my_jobs", before=page.older.encode(), **args)
    if page.newer:
        links["prev"] = url_for("api.list_my_jobs", after=page.newer.encode(), **args)
    body = {"items": [job_json(j) for j in page.jobs], "per_page": per_page, "links": links,
            # Exact, or null with a lower bound where counting on would read every match.
            "total": total.value if total.exact else None}
    if not total.exact:
        body["total_at_least"] = total.value
    if at.page is not None:
        body["page"] = at.page
    if page.scanned_to:
        body["scanned_to"] = page.scanned_to.created_at.isoformat()  # a bounded walk ended there: follow next
    return body


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    """One job's current state, for its owner or a holder of its read capability."""
    job, access = readable_job_or_404(job_id)
    if wants_page() and access is None:
        return pages.job_page(job)  # the page's polls and socket ride on the owner's cookie: JSON for the rest
    response = vary(jsonify(job_json(job, access=access, actions=access is None, place=queue_place(job))))
    if not job.job_state.is_final:
        response.headers["Retry-After"] = "1"
    return response


@bp.get("/jobs/<job_id>/events")
def job_events(job_id: str) -> Response:
    """The job's history, in sequence order; ``?after_seq=N`` for what came after N."""
    job, _ = readable_job_or_404(job_id)
    after = query_int("after_seq", 0, 0, 2**31 - 1)
    events = db.session.execute(
        db.select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.seq > after).order_by(JobEvent.seq).limit(1000)
    ).scalars()
    return jsonify({"job_id": str(job.id), "items": [event_json(e) for e in events]})


@bp.delete("/jobs/<job_id>", endpoint="cancel_job")
def cancel_job_route(job_id: str) -> tuple[Response, int]:
    """Cancel: at once if not started, at the next checkpoint if running; 409 once finished."""
    job = cancel_job(owned_job_or_404(job_id))  # JobConflict answers 409 (app.errors)
    # 202 while a running job has yet to reach its checkpoint, 200 once it is Cancelled.
    status = 200 if job.job_state.is_final else 202
    if is_htmx():
        return pages.job_page(job), 200
    return jsonify(job_json(job)), status


bp.add_url_rule("/jobs/<job_id>/cancel", endpoint="cancel_job", methods=["POST"])


@bp.post("/jobs/<job_id>/retry", endpoint="retry_job")
def retry_job_route(job_id: str) -> tuple[Response, int]:
    """Requeue a Failed or Cancelled job."""
    job = retry_job(owned_job_or_404(job_id))
    if is_htmx():
        return pages.job_page(job), 200
    response = jsonify(job_json(job))
    response.headers["Location"] = url_for("api.get_job", job_id=str(job.id))
    return response, 202



@bp.get("/jobs/<job_id>/result")
def job_result(job_id: str) -> Response:
    """Download the job's artifact, streamed chunk by chunk; ``Range`` resumes it; 409 until it has succeeded."""
    job, _ = readable_job_or_404(job_id)
    result = db.session.get(JobResult, job.id)
    if result is None:
        raise ApiError(409, "Result Not Ready",
                       f"The job is {job.state}; its result can be downloaded once it has Succeeded.",
                       slug="result-not-ready", headers={"Retry-After": "1"} if not job.job_state.is_final else {})
    size, tag = result.size, f'"{job.id}-{result.size}"'
    wanted = requested_range(request.headers.get("Range"), size)
    if wanted is not None and request.headers.get("If-Range") not in (None, tag):
        wanted = None  # the client's copy is of something else: the whole result
    if wanted is False:
        raise ApiError(416, "Range Not Satisfiable", f"The result is {size} bytes.", slug="range-not-satisfiable",
                       headers={"Content-Range": f"bytes */{size}"})
    start, end = wanted if wanted else (0, size - 1)
    if not size:
        body: Iterator[bytes] = iter(())
    elif result.chunk_size is None:  # under one chunk, or written before results were chunked: whole in its row
        body = iter([db.session.execute(sa.select(JobResult.content).where(JobResult.job_id == job.id))
                     .scalar_one()[start:end + 1]])
    else:
        body = read_range(job.id, result.chunk_size, start, end)
    response = Response(stream_with_context(body), status=206 if wanted else 200, content_type=result.content_type,
                        direct_passthrough=True)
    response.headers["Content-Disposition"] = f'attachment; filename="{result.filename}"'
    response.headers["Content-Length"] = str(end - start + 1 if size else 0)
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = "private, max-age=0"
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response
