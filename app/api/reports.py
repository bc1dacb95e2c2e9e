"""The seed's contract: ``GET /reports/v1`` (blocking) and ``POST /reports/v2|v3`` (background)."""
from __future__ import annotations

import time

from flask import Response, current_app, jsonify, request, url_for

from app.api import bp
from app.api.body import read_json_object
from app.api.serializers import job_json
from app.errors import ApiError
from app.jobs.later import RunAtInvalid, requested_due
from app.jobs.priority import PriorityInvalid
from app.jobs.service import IdempotencyMismatch, submit_job
from app.owners.capability import ACCESS_PARAM, job_capability
from app.owners.identity import current_owner
from app.reports import all_reports, get_report
from app.reports.context import InlineContext
from app.reports.params import ParamsInvalid
from app.reports.registry import UnknownReport
from app.web import pages
from app.web.rendering import is_htmx, vary

MAX_IDEMPOTENCY_KEY = 255


@bp.get("/reports")
def list_reports() -> Response:
    """The catalogue of registered reports and their parameter schemas."""
    return jsonify({"items": [r.describe() for r in all_reports()]})


@bp.get("/reports/v1")
def report_v1() -> Response:
    """Run the demo report inside the request and answer ``Completed`` (the seed's v1)."""
    demo = get_report("demo")
    raw = {"duration_seconds": current_app.config["LONGRUN_V1_SECONDS"], **request.args.to_dict()}
    if raw.pop("fail_times", None) is not None:
        raise ApiError(422, "Invalid Parameters", "v1 runs in the request and cannot retry; "
                       "use POST /reports/v2 to try fail_times.", slug="invalid-parameters",
                       errors=[{"field": "params.fail_times", "message": "is not accepted by v1"}])
    try:
        params = demo.validate(raw)
    except ParamsInvalid as exc:
        raise _invalid_params(exc) from None
    cap = current_app.config["LONGRUN_V1_MAX_SECONDS"]
    if params["duration_seconds"] > cap:
        raise ApiError(422, "Invalid Parameters", f"v1 blocks a server thread; duration_seconds must be at most {cap:g} "
                       "(use POST /reports/v2 for longer jobs).", slug="invalid-parameters",
                       errors=[{"field": "params.duration_seconds", "message": f"must be at most {cap:g}"}])
    started = time.monotonic()
    demo.func(InlineContext(), **params)
    elapsed = time.monotonic() - started
    if is_htmx():
        return pages.v1_fragment(elapsed)
    response = vary(Response("Completed", mimetype="text/plain"))
    response.headers["X-Elapsed-Seconds"] = f"{elapsed:.3f}"
    return response


@bp.post("/reports/v2")
def report_v2() -> tuple[Response, int]:
    """Enqueue a job; the client polls ``Location``."""
    return _enqueue("v2")


@bp.post("/reports/v3")
def report_v3() -> tuple[Response, int]:
    """Enqueue a job; the client follows it live over ``/notifications``."""
    return _enqueue("v3")


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
        raise ApiError(422, "Invalid Request",
                       f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters.",
                       slug="validation-error", errors=[{"field": "Idempotency-Key", "message": "invalid"}])
    return key


REUSED_HEADER = "Longrun-Reused"


def _accepts_reuse() -> bool:
    """Whether an existing job with the same parameters may answer: not when the request says
    ``Cache-Control: no-cache`` (or ``no-store``), asking for a fresh run."""
    directives = {d.strip().lower() for d in request.headers.get("Cache-Control", "").split(",")}
    return not directives & {"no-cache", "no-store"}


def _invalid_params(exc: ParamsInvalid) -> ApiError:
    return ApiError(422, "Invalid Parameters", f"Some parameters are not valid: {exc}.",
                    slug="invalid-parameters", errors=exc.errors)


def _enqueue(api_version: str) -> tuple[Response, int]:
    body = read_json_object({"report", "params", "priority", "run_at", "delay_seconds"})
    key = _idempotency_key()
    report_name = body.get("report", "demo")
    if not isinstance(report_name, str):
        raise ApiError(422, "Invalid Request", "'report' must be the name of a report, as a string.",
                       slug="validation-error", errors=[{"field": "report", "message": "must be a string"}])
    try:
        run_at = requested_due(current_app.config, body.get("run_at"), body.get("delay_seconds"))
        submission = submit_job(current_owner(), report_name, body.get("params"), api_version=api_version,
                                idempotency_key=key, priority=body.get("priority"), run_at=run_at,
                                reuse=_accepts_reuse())
    except RunAtInvalid as exc:
        raise ApiError(422, "Invalid Run Time", f"'{exc.field}' {exc.message}.", slug="invalid-run-at",
                       errors=[{"field": exc.field, "message": exc.message}]) from None
    except UnknownReport as exc:
        raise ApiError(422, "Unknown Report", str(exc)[:300] + ".", slug="unknown-report",
                       errors=[{"field": "report", "message": "unknown report"}]) from None
    except ParamsInvalid as exc:
        raise _invalid_params(exc) from None
    except PriorityInvalid as exc:
        raise ApiError(422, "Invalid Priority", f"'priority' {exc}.", slug="invalid-priority",
                       errors=[{"field": "priority", "message": str(exc)}]) from None
    except IdempotencyMismatch:
        raise ApiError(422, "Idempotency Key Reused",
                       "This Idempotency-Key was already used with a different request body; use a new key.",
                       slug="idempotency-key-reused") from None
    job = submission.job
    # The read capability rides along, so a client that keeps no cookie can still GET its Location.
    access = job_capability(job.id)
    location = url_for("api.get_job", job_id=str(job.id), **{ACCESS_PARAM: access})
    response = pages.enqueued_fragment(job, api_version) if is_htmx() else vary(jsonify(job_json(job, access=access)))
    response.headers["Location"] = location
    if submission.reused:
        # The same report and parameters ran (or run) already for this owner: that job answers.
        response.headers[REUSED_HEADER] = "true"
        if job.job_state.is_final:
            return response, 200
    elif not submission.created:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Retry-After"] = "1"
    return response, 202
