"""The ``/schedules`` resource: JSON for API clients, pages for browsers, fragments for htmx (one URL each)."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, make_response, url_for

from app.api.body import read_json_object
from app.api.serializers import job_json
from app.errors import ApiError
from app.owners.identity import current_owner
from app.reports.params import ParamsInvalid
from app.reports.registry import UnknownReport
from app.schedules import pages
from app.schedules.models import Schedule
from app.schedules.serializers import schedule_json
from app.schedules.service import (
    FIELDS,
    ScheduleInvalid,
    create_schedule,
    delete_schedule,
    find_schedule,
    last_runs,
    list_schedules,
    run_now,
    runs,
    set_enabled,
    update_schedule,
)
from app.web.rendering import is_htmx, vary, wants_page

bp = Blueprint("schedules", __name__)


def owned_schedule_or_404(schedule_id: str) -> Schedule:
    """The caller's schedule, or a 404 that looks the same for unknown and foreign ids."""
    schedule = find_schedule(current_owner(), schedule_id)
    if schedule is None:
        raise ApiError(404, "Schedule Not Found", "There is no schedule with this id among your schedules.",
                       slug="schedule-not-found")
    return schedule


def invalid(exc: ScheduleInvalid | ParamsInvalid) -> ApiError:
    """The 422 problem for fields that cannot be accepted, each one named."""
    return ApiError(422, "Invalid Schedule", f"Some fields are not valid: {exc}."[:600], slug="invalid-schedule",
                    errors=exc.errors)


@bp.get("/schedules")
def list_my_schedules() -> Response:
    """The caller's schedules, newest first."""
    schedules = list_schedules(current_owner())
    last = last_runs(schedules)
    if wants_page():
        return pages.schedules_page(schedules, last)
    return vary(jsonify({"items": [schedule_json(s, last_run=last.get(s.id)) for s in schedules]}))


@bp.post("/schedules")
def create() -> tuple[Response, int]:
    """Create a schedule: 201 with its ``Location``."""
    try:
        schedule = create_schedule(current_owner(), read_json_object(set(FIELDS)))
    except ScheduleInvalid as exc:
        raise invalid(exc) from None
    response = jsonify(schedule_json(schedule, runs=[]))
    response.headers["Location"] = url_for("schedules.get_schedule", schedule_id=str(schedule.id))
    return response, 201


@bp.get("/schedules/<schedule_id>")
def get_schedule(schedule_id: str) -> Response:
    """One schedule with its next fire times and its newest runs."""
    schedule = owned_schedule_or_404(schedule_id)
    recent = runs(schedule.id)
    if wants_page():
        return pages.schedule_page(schedule, recent)
    return vary(jsonify(schedule_json(schedule, runs=recent, last_run=recent[0] if recent else None)))


@bp.patch("/schedules/<schedule_id>")
def patch_schedule(schedule_id: str) -> Response:
    """Change some of the schedule's fields (the others stay)."""
    schedule = owned_schedule_or_404(schedule_id)
    try:
        schedule = update_schedule(schedule, read_json_object(set(FIELDS)))
    except ScheduleInvalid as exc:
        raise invalid(exc) from None
    return jsonify(schedule_json(schedule, runs=runs(schedule.id)))


@bp.delete("/schedules/<schedule_id>")
def delete(schedule_id: str) -> Response:
    """Delete the schedule (its past jobs stay, unlinked)."""
    delete_schedule(owned_schedule_or_404(schedule_id))
    if is_htmx():
        return pages.deleted(schedule_id)
    return make_response("", 204)


def _toggle(schedule_id: str, enabled: bool) -> Response:
    schedule = set_enabled(owned_schedule_or_404(schedule_id), enabled)
    if is_htmx():
        return pages.summary_fragment(schedule)
    return jsonify(schedule_json(schedule, runs=runs(schedule.id)))


@bp.post("/schedules/<schedule_id>/pause")
def pause_schedule(schedule_id: str) -> Response:
    """Pause: slots pass without runs until resumed."""
    return _toggle(schedule_id, False)


@bp.post("/schedules/<schedule_id>/resume")
def resume_schedule(schedule_id: str) -> Response:
    """Resume: the next slot from now on runs (slots passed while paused do not)."""
    return _toggle(schedule_id, True)


@bp.post("/schedules/<schedule_id>/run")
def run_schedule(schedule_id: str) -> tuple[Response, int]:
    """Run now, outside the cron: 202 with the new job (owner limits apply: 429)."""
    schedule = owned_schedule_or_404(schedule_id)
    try:
        job = run_now(schedule).job
    except (ParamsInvalid, UnknownReport) as exc:
        raise ApiError(422, "Invalid Schedule", f"The schedule's report no longer accepts it: {exc}"[:600],
                       slug="invalid-schedule", errors=getattr(exc, "errors", None)) from None
    if is_htmx():
        return pages.summary_fragment(schedule, ran=job), 200
    response = jsonify(job_json(job))
    response.headers["Location"] = url_for("api.get_job", job_id=str(job.id))
    return response, 202
