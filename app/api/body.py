"""Reading request bodies and query strings with problem+json answers for every mistake."""
from __future__ import annotations

import json
from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import ApiError

# Deeper than any body or socket message we accept; also far below where json.loads hits the recursion limit.
MAX_JSON_DEPTH = 32


class MalformedJson(ValueError):
    """Text a client sent that is not JSON we accept; ``str()`` completes "The body ..." for the client."""


def parse_json(raw: bytes | str) -> Any:
    """Parse JSON a client sent (a request body, a socket message); anything unusable is ``MalformedJson``.

    ``json.loads`` raises ``RecursionError``, not ``JSONDecodeError``, a thousand levels deep, and a value
    nested just above that would still be too deep for code that walks it later.
    """
    try:
        data = json.loads(raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw)
    except UnicodeDecodeError:
        raise MalformedJson("is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise MalformedJson(f"nests deeper than {MAX_JSON_DEPTH} levels") from None
    if _nesting_exceeds(data, MAX_JSON_DEPTH):
        raise MalformedJson(f"nests deeper than {MAX_JSON_DEPTH} levels")
    return data


def _nesting_exceeds(value: Any, limit: int) -> bool:
    # Iterative: a recursive walk is exactly what must not meet a hostile document.
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return False


def refuse_oversized_stream() -> None:
    """``before_request``: a chunked body past ``MAX_CONTENT_LENGTH`` is a 413, as an oversized Content-Length is.

    Werkzeug stops reading such a stream at the limit without saying so (PITFALLS: Input edges), and the view
    would parse the first 64 KiB of a body the client did not send. Read it here (cached for the view and the
    form parser), then one byte more from the server's stream.
    """
    limit = request.max_content_length
    if limit is None or request.content_length is not None:
        return
    if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return
    body = request.get_data(cache=True)  # stops at ``limit`` without an error
    if len(body) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


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
        data = parse_json(raw)
    except MalformedJson as exc:
        raise ApiError(400, "Malformed JSON", f"The body {exc}.", slug="malformed-json") from None
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
