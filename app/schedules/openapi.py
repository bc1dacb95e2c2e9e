"""The ``/schedules`` operations and schemas of the OpenAPI document (create_app hands them to app/api/openapi.py)."""
from __future__ import annotations

import zoneinfo
from typing import Any

from app.schedules.models import MISFIRE_POLICIES

PATH_PARAMETERS = {"schedule_id": {"name": "schedule_id", "in": "path", "required": True, "schema": {"type": "string"},
                                   "description": "Schedule id (UUID)."}}

_FIELDS: dict[str, Any] = {
    "report": {"type": "string"}, "params": {"type": "object"},
    "cron": {"type": "string", "maxLength": 120, "description": "5 fields, or @hourly, @daily, @weekly, @monthly"},
    "timezone": {"type": "string", "maxLength": 64, "description": "IANA name, such as Europe/Berlin"},
    "enabled": {"type": "boolean"}, "misfire": {"type": "string", "enum": list(MISFIRE_POLICIES)},
}
_RUN = {"type": "object", "properties": {"job_id": {"type": "string"}, "scheduled_for": {"type": ["string", "null"]},
                                         "state": {"type": "string"}}}

def create_schema(params_by_report: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One variant per report with its exact parameters; zones from this machine's zone database.

    Only ``cron`` is left to the server (its fields, and the operator's minimum interval): a schema-valid
    expression may still answer 422 naming ``cron``.
    """
    zones = {"type": "string", "enum": sorted(zoneinfo.available_timezones())}
    return {"oneOf": [{"type": "object", "additionalProperties": False, "required": ["report", "cron"],
                       "properties": {**_FIELDS, "report": {"const": name}, "params": params, "timezone": zones}}
                      for name, params in params_by_report.items()]}


def report_schemas(params_by_report: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The schemas built from every report's parameters (``params_by_report``: report name -> params object)."""
    return {"ScheduleCreate": create_schema(params_by_report)}


SCHEMAS: dict[str, Any] = {
    # A change is checked against the stored report's parameters: 422 may name params.* or cron.
    "ScheduleChange": {"type": "object", "additionalProperties": False, "properties": _FIELDS},
    "Schedule": {
        "type": "object",
        "required": ["id", "report", "params", "cron", "timezone", "enabled", "misfire", "description", "next_fires",
                     "links"],
        "properties": {**_FIELDS, "id": {"type": "string", "format": "uuid"}, "description": {"type": "string"},
                       "priority": {"type": "integer"}, "next_fire_at": {"type": ["string", "null"]},
                       "next_fires": {"type": "array", "items": {"type": "object", "properties": {
                           "local": {"type": "string"}, "utc": {"type": "string"}}}},
                       "last_fired_at": {"type": ["string", "null"]}, "last_error": {"type": ["string", "null"]},
                       "last_run": {"oneOf": [{"type": "null"}, _RUN]}, "runs": {"type": "array", "items": _RUN},
                       "links": {"type": "object", "additionalProperties": {"type": "string"}}},
    },
    "ScheduleList": {"type": "object", "required": ["items"],
                     "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}}}},
}


def operations(json: Any, problems: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The schedule routes' operations by (endpoint, method), built with the document's own response helpers."""
    one = ("401", "404", "503")
    body = lambda ref: {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}  # noqa: E731
    action = lambda summary: {  # noqa: E731
        "summary": summary, "responses": {"200": json("Schedule", "The schedule."), **problems("403", *one)}}
    return {
        ("schedules.list_my_schedules", "get"): {
            "summary": "Your schedules, newest first",
            "responses": {"200": json("ScheduleList", "Your schedules."), **problems("401", "503")}},
        ("schedules.create", "post"): {
            "summary": "Create a schedule", "requestBody": body("ScheduleCreate"),
            "responses": {"201": dict(json("Schedule", "Created; see `Location`."),
                                      headers={"Location": {"schema": {"type": "string"}}}),
                          **problems("400", "401", "403", "413", "415", "422", "429", "503")}},
        ("schedules.get_schedule", "get"): {
            "summary": "One schedule: next fire times, description, newest runs",
            "responses": {"200": json("Schedule", "The schedule."), **problems(*one)}},
        ("schedules.patch_schedule", "patch"): {
            "summary": "Change some of its fields", "requestBody": body("ScheduleChange"),
            "responses": {"200": json("Schedule", "Changed."), **problems("400", "413", "415", "422", *one)}},
        ("schedules.delete", "delete"): {
            "summary": "Delete it (its jobs stay)", "responses": {"204": {"description": "Deleted."}, **problems(*one)}},
        ("schedules.pause_schedule", "post"): action("Pause: slots pass without runs"),
        ("schedules.resume_schedule", "post"): action("Resume from the next slot after now"),
        ("schedules.run_schedule", "post"): {
            "summary": "Run now, outside the cron",
            "responses": {"202": json("Job", "The new job."), **problems("403", "422", "429", *one)}},
    }
