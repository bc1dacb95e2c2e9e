"""Reading request bodies and query strings with problem+json answers for every mistake."""
from __future__ import annotations

import json
from typing import Any

from flask import request

from app.errors import ApiError


def read_json_object(allowed_keys: set[str]) -> dict[str, Any]:
    """The request's JSON object (``{}`` for an empty body), or a precise ``ApiError``."""
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    if not raw.strip():
        return {}
    if not request.mimetype or not (request.mimetype == "application/json" or request.mimetype.endswith("+json")):
        raise ApiError(415, "Unsupported Media Type",
                       f"Send the body as JSON with 'Content-Type: application/json' (got {request.mimetype or 'none'!r}).",
                       slug="unsupported-media-type")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "Malformed JSON", "The body is not valid UTF-8.", slug="malformed-json") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, "Malformed JSON",
                       f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                       slug="malformed-json") from None
    if not isinstance(data, dict):
        raise ApiError(422, "Invalid Request", "The body must be a JSON object such as "
                       '{"report": "demo", "params": {}}.', slug="validation-error",
                       errors=[{"field": "body", "message": "must be a JSON object"}])
    unknown = sorted(set(data) - allowed_keys)
    if unknown:
        raise ApiError(422, "Invalid Request", f"Unknown field(s): {', '.join(unknown)[:200]}.",
                       slug="validation-error",
                       errors=[{"field": k[:100], "message": f"is not allowed (allowed: {', '.join(sorted(allowed_keys))})"}
                               for k in unknown[:20]])
    return data


def query_int(name: str, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within bounds, or a 422 naming it."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise ApiError(422, "Invalid Request", f"Query parameter '{name}' must be an integer from {minimum} to {maximum}.",
                       slug="validation-error",
                       errors=[{"field": name, "message": f"must be an integer from {minimum} to {maximum}"}])
    return value
