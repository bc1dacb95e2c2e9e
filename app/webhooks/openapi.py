"""The webhook operations and schemas of the OpenAPI document (create_app hands them to app/api/openapi.py)."""
from __future__ import annotations

from typing import Any

from app.webhooks.guard import MAX_URL
from app.webhooks.models import EVENTS

PATH_PARAMETERS = {
    "endpoint_id": {"name": "endpoint_id", "in": "path", "required": True, "schema": {"type": "string"},
                    "description": "Webhook endpoint id (UUID)."},
    "delivery_id": {"name": "delivery_id", "in": "path", "required": True, "schema": {"type": "string"},
                    "description": "Delivery id (UUID): the `webhook-id` header of its messages."},
}

_EVENTS = {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(EVENTS)}}
_TRY = {"type": "object", "required": ["number", "at", "status_code", "latency_ms"],
        "properties": {"number": {"type": "integer"}, "at": {"type": "string"},
                       "status_code": {"type": ["integer", "null"]}, "latency_ms": {"type": ["number", "null"]},
                       "excerpt": {"type": ["string", "null"]}}}
_LINKS = {"type": "object", "additionalProperties": {"type": "string"}}

SCHEMAS: dict[str, Any] = {
    "WebhookCreate": {
        "type": "object", "additionalProperties": False, "required": ["url"],
        "properties": {"url": {"type": "string", "format": "uri", "maxLength": MAX_URL,
                               "description": "http(s); private, loopback and link-local addresses are refused "
                                              "unless the operator allows them"},
                       "events": _EVENTS, "description": {"type": ["string", "null"], "maxLength": 200}}},
    "WebhookEndpoint": {
        "type": "object", "required": ["id", "url", "events", "created_at", "links"],
        "properties": {"id": {"type": "string", "format": "uuid"}, "url": {"type": "string"}, "events": _EVENTS,
                       "description": {"type": ["string", "null"]}, "created_at": {"type": "string"},
                       "secret": {"type": "string", "description": "only in the answer that created it"},
                       "links": _LINKS}},
    "WebhookList": {"type": "object", "required": ["items"],
                    "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookEndpoint"}}}},
    "WebhookDelivery": {
        "type": "object", "required": ["id", "endpoint", "event", "status", "attempts", "tries", "links"],
        "properties": {"id": {"type": "string", "format": "uuid"},
                       "endpoint": {"type": "object", "properties": {"id": {"type": "string"}, "url": {"type": "string"}}},
                       "event": {"type": "string", "enum": list(EVENTS)},
                       "status": {"type": "string", "enum": ["pending", "delivered", "gave_up"]},
                       "attempts": {"type": "integer"}, "next_attempt_at": {"type": ["string", "null"]},
                       "created_at": {"type": "string"}, "finished_at": {"type": ["string", "null"]},
                       "tries": {"type": "array", "items": _TRY}, "links": _LINKS}},
    "WebhookDeliveryList": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookDelivery"}}}},
}


def operations(json: Any, problems: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The webhook routes' operations by (endpoint, method), built with the document's own response helpers."""
    return {
        ("webhooks.list_webhooks", "get"): {
            "summary": "Your webhook endpoints (without their secrets)",
            "responses": {"200": json("WebhookList", "Your endpoints."), **problems("401", "503")}},
        ("webhooks.create", "post"): {
            "summary": "Register an endpoint; the answer holds its signing secret, shown only this once",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/WebhookCreate"}}}},
            "responses": {"201": dict(json("WebhookEndpoint", "Registered; see `Location`."),
                                      headers={"Location": {"schema": {"type": "string"}}}),
                          **problems("400", "401", "403", "413", "415", "422", "503")}},
        ("webhooks.delete", "delete"): {
            "summary": "Remove the endpoint (messages still owed to it are dropped)",
            "responses": {"204": {"description": "Removed."}, **problems("401", "404", "503")}},
        ("webhooks.job_deliveries", "get"): {
            "summary": "The job's webhook deliveries and every attempt (time, status code, latency)",
            "responses": {"200": json("WebhookDeliveryList", "Oldest first."),
                          **problems("401", "404", "410", "503")}},
        ("webhooks.redeliver_delivery", "post"): {
            "summary": "Send the delivery again now (the same webhook-id)",
            "responses": {"202": json("WebhookDelivery", "Due now."), **problems("401", "403", "404", "410", "503")}},
    }
