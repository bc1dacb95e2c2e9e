"""The OpenAPI 3 document of the JSON API, built from the code (routes, report schemas, limits)."""
from __future__ import annotations

import re
from typing import Any

from flask import Response, current_app, jsonify

from app.api import bp
from app.jobs.priority import LOWEST
from app.jobs.states import JobState
from app.owners.capability import ACCESS_PARAM
from app.reports import all_reports, get_report
from app.reports.params import Param

PROBLEM = "application/problem+json"

_ERRORS = {
    "400": "Malformed request (for example invalid JSON).",
    "401": "Unknown or revoked bearer token.",
    "403": "CSRF check failed (cookie-authenticated form or htmx request without its token).",
    "404": "No such job or schedule among yours (unknown and foreign ids look the same).",
    "409": "The job's state does not allow this.",
    "410": "The job existed but was purged (retention) or deleted by an operator.",
    "413": "Request body too large.",
    "415": "Body is not JSON.",
    "416": "The requested byte range is outside the result (`Content-Range: bytes */<size>`).",
    "422": "Invalid field, parameter or query value; `errors` names each one.",
    "429": "Too many active jobs or job creations for this owner; see Retry-After.",
    "503": "Database unreachable; try again shortly.",
}


def _problems(*codes: str) -> dict[str, Any]:
    return {code: {"description": _ERRORS[code], "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for code in codes}


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


# The blueprints whose routes are the JSON API, and the routes of theirs the document leaves out: the document
# itself, and /metrics (Prometheus text for operators).
# Other packages' parts of the document (operations, schemas, path parameters) reach it through
# ``app.extensions[PARTS]``, set by create_app, so this package imports none of them (webhooks import the api).
DOCUMENTED_BLUEPRINTS = frozenset({"api", "ops", "schedules", "webhooks"})
NOT_DOCUMENTED = frozenset({"/openapi.json", "/metrics", "/webhooks/form"})
PARTS = "longrun.openapi_parts"

JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "Job id (UUID)."}
PATH_PARAMETERS = {"job_id": JOB_ID}
ACCESS = {"name": ACCESS_PARAM, "in": "query", "required": False, "schema": {"type": "string"},
          "description": "The job's read capability (in the 202's `Location`): reads it without the owner's cookie or token."}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "instance": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"],
                                                  "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Job": {
        "type": "object",
        "required": ["id", "report", "params", "state", "final", "progress", "attempts", "max_attempts", "links"],
        "properties": {
            "id": {"type": "string", "format": "uuid"}, "report": {"type": "string"}, "params": {"type": "object"},
            "state": {"type": "string", "enum": [s.value for s in JobState]}, "final": {"type": "boolean"},
            "progress": {"type": "object", "properties": {
                "percent": {"type": "number"}, "done": {"type": ["integer", "null"]},
                "total": {"type": ["integer", "null"]}, "message": {"type": ["string", "null"]}}},
            "attempts": {"type": "integer"}, "max_attempts": {"type": "integer"},
            "cancel_requested": {"type": "boolean"},
            "created_at": {"type": "string"}, "started_at": {"type": ["string", "null"]},
            "finished_at": {"type": ["string", "null"]}, "heartbeat_at": {"type": ["string", "null"]},
            "next_attempt_at": {"type": ["string", "null"]}, "priority": {"type": "integer"},
            "schedule_id": {"type": ["string", "null"]}, "scheduled_for": {"type": ["string", "null"]},
            "queue": {"type": "object", "properties": {
                "position": {"type": "integer"}, "predicted_start": {"type": ["string", "null"]},
                "paused": {"type": "boolean"}}},
            "error": {"type": ["object", "null"]}, "result": {"type": ["object", "null"]},
            "last_seq": {"type": "integer"}, "trace_id": {"type": ["string", "null"]},
            "links": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "JobList": {
        "type": "object", "required": ["items", "per_page", "total", "links"],
        "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                       "page": {"type": "integer", "description": "the page= asked for, if any"},
                       "per_page": {"type": "integer"},
                       "total": {"type": ["integer", "null"], "description": "exact; null past 10,000"},
                       "total_at_least": {"type": "integer", "description": "a lower bound when total is null"},
                       "scanned_to": {"type": "string", "description": "a bounded walk stopped at this created_at"},
                       "links": {"type": "object", "additionalProperties": {"type": "string"},
                                 "description": "next: older jobs (before=), prev: newer jobs (after=), first"}},
    },
    "EventList": {
        "type": "object", "required": ["job_id", "items"],
        "properties": {"job_id": {"type": "string"}, "items": {"type": "array", "items": {
            "type": "object", "required": ["seq", "kind", "state"],
            "properties": {"seq": {"type": "integer"}, "kind": {"type": "string", "enum": ["state", "progress", "log"]},
                           "state": {"type": "string"}, "progress": {"type": "number"},
                           "message": {"type": ["string", "null"]}, "attempt": {"type": "integer"},
                           "at": {"type": "string"}}}}},
    },
    "ReportCatalog": {"type": "object", "required": ["items"],
                      "properties": {"items": {"type": "array", "items": {"type": "object"}}}},
    "Health": {"type": "object", "required": ["status"],
               "properties": {"status": {"type": "string"}, "checks": {"type": "object"}}},
}


def _params_object(params: tuple[Param, ...]) -> dict[str, Any]:
    """A report's parameters as one JSON Schema object, from their declarations."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": {p.name: p.json_schema() for p in params}}
    required = [p.name for p in params if p.required]
    if required:
        schema["required"] = required
    return schema


def _priority_schema(allowance: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": LOWEST, "maximum": allowance,
            "description": f"0 (lowest) to 9; this report's requests default to {allowance} and may ask for less"}


def _later_schema() -> dict[str, Any]:
    """``run_at`` / ``delay_seconds``: the job is created Scheduled and enqueued when due (bounds: 422)."""
    horizon = current_app.config["LONGRUN_RUN_AT_HORIZON_DAYS"] * 86400
    return {"run_at": {"type": "string", "format": "date-time",
                       "description": "RFC 3339; not in the past, at most the horizon ahead"},
            "delay_seconds": {"type": "number", "minimum": 0, "maximum": horizon}}


def submit_request_schema() -> dict[str, Any]:
    """One variant per registered report (its exact parameters), plus the bare form that means `demo`."""
    variants = []
    for report in all_reports():
        params = _params_object(report.params)
        variants.append({"type": "object", "additionalProperties": False, "required": ["report"],
                         "properties": {"report": {"const": report.name}, "params": params,
                                        "priority": _priority_schema(report.priority), **_later_schema()},
                         "description": report.title})
    demo = get_report("demo")
    demo_params = _params_object(demo.params)
    variants.append({"type": "object", "additionalProperties": False,
                     "properties": {"params": demo_params, "priority": _priority_schema(demo.priority),
                                    **_later_schema()},
                     "description": "No report named: the demo report."})
    return {"oneOf": variants}


def build_document() -> dict[str, Any]:
    """The whole document for the current app (its reports and limits)."""
    demo = {p.name: p for p in get_report("demo").params}
    v1_duration = dict(demo["duration_seconds"].json_schema(), maximum=current_app.config["LONGRUN_V1_MAX_SECONDS"],
                       default=current_app.config["LONGRUN_V1_SECONDS"])
    submit = {
        "requestBody": {"required": False, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SubmitRequest"}}}},
        "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]*[!-~][ -~]*$"}},
                       {"name": "Cache-Control", "in": "header", "required": False, "schema": {"type": "string"},
                        "description": "`no-cache`: a fresh run even when the report reuses a recent job with the same "
                                       "parameters (its `reuse_seconds`)"}],
        "responses": {"202": dict(_json("Job", "Accepted; follow `Location` (it carries the job's read capability). "
                                               "`Longrun-Reused: true`: a waiting or running job with the same report "
                                               "and parameters answers instead of a new one."), headers={
            "Location": {"schema": {"type": "string"}}, "Retry-After": {"schema": {"type": "string"}},
            "Longrun-Reused": {"schema": {"type": "string", "enum": ["true"]}}}),
            "200": dict(_json("Job", "A recent succeeded job with the same report and parameters (result reuse)."),
                        headers={"Location": {"schema": {"type": "string"}},
                                 "Longrun-Reused": {"schema": {"type": "string", "enum": ["true"]}}}),
            **_problems("400", "401", "403", "413", "415", "422", "429", "503")},
    }
    job_ops = ("401", "404", "410", "503")
    cancelled = {"200": _json("Job", "Cancelled."), "202": _json("Job", "Stopping at its next checkpoint.")}
    # What each route does, by (endpoint, method): its path, methods and path parameters come from the routes.
    operations: dict[tuple[str, str], dict[str, Any]] = {
        ("api.list_reports", "get"): {"summary": "Registered reports and their parameter schemas",
                                      "responses": {"200": _json("ReportCatalog", "The catalogue."), **_problems("401")}},
        ("api.report_v1", "get"): {
            "summary": "Run the demo report inside the request; answers `Completed`",
            "parameters": [{"name": "duration_seconds", "in": "query", "schema": v1_duration},
                           {"name": "steps", "in": "query", "schema": demo["steps"].json_schema()}],
            "responses": {"200": {"description": "Done.", "content": {"text/plain": {"schema": {"type": "string", "enum": ["Completed"]}}}},
                          **_problems("401", "422")}},
        ("api.report_v2", "post"): {"summary": "Enqueue a job (poll its Location)", **submit},
        ("api.report_v3", "post"): {"summary": "Enqueue a job (follow it over /notifications)", **submit},
        ("api.list_my_jobs", "get"): {
            "summary": "Your jobs, newest first",
            "parameters": [{"name": "state", "in": "query", "schema": {"type": "string", "enum": [s.value for s in JobState]}},
                           {"name": "report", "in": "query", "schema": {"type": "string", "enum": [r.name for r in all_reports()]}},
                           {"name": "before", "in": "query", "schema": {"type": "string"},
                            "description": "an opaque position from links.next: the jobs just older"},
                           {"name": "after", "in": "query", "schema": {"type": "string"},
                            "description": "an opaque position from links.prev: the jobs just newer"},
                           {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000000},
                            "description": "1 is the newest page; pages reach the newest 10,000 jobs (past them: 404)"},
                           {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}],
            "responses": {"200": _json("JobList", "A page of jobs."), **_problems("401", "404", "422", "503")}},
        ("api.get_job", "get"): {"summary": "One job", "parameters": [ACCESS],
                                 "responses": {"200": _json("Job", "The job."), **_problems(*job_ops)}},
        # One endpoint, two routes: DELETE /jobs/{job_id} and POST /jobs/{job_id}/cancel (which a form can send).
        ("api.cancel_job", "delete"): {"summary": "Cancel the job", "responses": {**cancelled, **_problems("409", *job_ops)}},
        ("api.cancel_job", "post"): {"summary": "Cancel the job (same as DELETE)",
                                     "responses": {**cancelled, **_problems("403", "409", *job_ops)}},
        ("api.retry_job", "post"): {"summary": "Requeue a Failed or Cancelled job",
                                    "responses": {"202": _json("Job", "Requeued."), **_problems("403", "409", "429", *job_ops)}},
        ("api.job_events", "get"): {
            "summary": "The job's history",
            "parameters": [{"name": "after_seq", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 2147483647}},
                           ACCESS],
            "responses": {"200": _json("EventList", "Events in sequence order."), **_problems("422", *job_ops)}},
        ("api.job_result", "get"): {
            "summary": "Download the job's artifact (streamed; `Range: bytes=N-` resumes it)",
            "parameters": [ACCESS, {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"},
                                    "description": "one byte range, `bytes=start-[end]` or `bytes=-length`"},
                           {"name": "If-Range", "in": "header", "required": False, "schema": {"type": "string"},
                            "description": "the ETag of the copy being resumed: another one gets the whole result"}],
            "responses": {"200": {"description": "The artifact.", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                          "206": {"description": "The requested range (`Content-Range`).",
                                  "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                          **_problems("409", "416", *job_ops)}},
        **{op: spec for part in _parts() for op, spec in part.operations(_json, _problems).items()},
        ("ops.healthz", "get"): {"summary": "The process answers", "responses": {"200": _json("Health", "Alive.")}},
        ("ops.readyz", "get"): {"summary": "PostgreSQL and Redis reachable",
                                "responses": {"200": _json("Health", "Ready."), **_problems("503")}},
    }
    paths = paths_from_routes(operations)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Longrun", "version": "1.0.0",
                 "description": "Long-running reports: start, follow (also over the /notifications WebSocket), download."},
        "paths": paths,
        "components": {"schemas": {**SCHEMAS, **_part_schemas(), "SubmitRequest": submit_request_schema()},
                       "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Token from `flask tokens create`."},
            "session": {"type": "apiKey", "in": "cookie", "name": "session"}}},
        "security": [{}, {"bearer": []}, {"session": []}],
    }


def _parts() -> list[Any]:
    """The document parts other packages contribute: modules with ``operations``, ``SCHEMAS`` and ``PATH_PARAMETERS``,
    and optionally ``report_schemas`` (schemas built from every report's parameters)."""
    return current_app.extensions.get(PARTS, [])


def _part_schemas() -> dict[str, Any]:
    """Every part's schemas, those built per report included."""
    params_by_report = {r.name: _params_object(r.params) for r in all_reports()}
    schemas: dict[str, Any] = {}
    for part in _parts():
        schemas.update(part.SCHEMAS)
        if hasattr(part, "report_schemas"):
            schemas.update(part.report_schemas(params_by_report))
    return schemas


def paths_from_routes(operations: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """The document's paths: every API route of the app with its methods and path parameters; each operation's
    description from ``operations``. A route without one is a bug, not a silent gap."""
    paths: dict[str, Any] = {}
    for rule in sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint.split(".")[0] not in DOCUMENTED_BLUEPRINTS or rule.rule in NOT_DOCUMENTED:
            continue
        item = paths.setdefault(re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule), {})
        if rule.arguments:
            known = {**PATH_PARAMETERS, **{k: v for part in _parts() for k, v in part.PATH_PARAMETERS.items()}}
            item["parameters"] = [known[name] for name in sorted(rule.arguments)]
        for method in sorted(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}):
            operation = operations.get((rule.endpoint, method))
            if operation is None:
                raise LookupError(f"{method.upper()} {rule.rule} ({rule.endpoint}) has no OpenAPI description")
            item[method] = operation
    return paths


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """This API's OpenAPI document."""
    return jsonify(build_document())
