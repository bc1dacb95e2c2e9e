"""One error helper: RFC 9457 problem details for the API, a readable page for browsers."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from app.jobs.limits import Throttled
from app.jobs.service import JobConflict

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    """An error a client can act on; rendered as problem details."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        slug: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.slug = slug or title.lower().replace(" ", "-")
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}


def problem(error: ApiError) -> Response:
    """Render ``error`` as ``application/problem+json``."""
    body: dict[str, Any] = {
        "type": f"/problems/{error.slug}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "instance": request.path,
    }
    if error.errors:
        body["errors"] = error.errors
    body.update(error.extra)
    response = jsonify(body)
    response.status_code = error.status
    response.mimetype = PROBLEM_JSON
    response.headers.update(error.headers)
    return response


def wants_html() -> bool:
    """True when the client is a browser asking for a page rather than JSON."""
    best = request.accept_mimetypes.best_match(["application/json", PROBLEM_JSON, "text/html"])
    return best == "text/html" and request.accept_mimetypes[best] > request.accept_mimetypes["application/json"]


def render_error(error: ApiError) -> Response | tuple[str, int, dict[str, str]]:
    """Problem details for API clients, a message in the page for htmx, an HTML page for browsers."""
    if request.headers.get("HX-Request") == "true":
        headers = {**error.headers, "HX-Retarget": "#request-error", "HX-Reswap": "innerHTML"}
        return render_template("_error_message.html", error=error), error.status, headers
    if wants_html():
        return render_template("error.html", error=error), error.status, error.headers
    return problem(error)


_HTTP_DETAILS = {
    404: "Nothing exists at this address, or it belongs to someone else.",
    405: "This address does not accept that HTTP method.",
    413: "The request body is too large.",
}


def _from_http(exc: HTTPException) -> ApiError:
    status = exc.code or 500
    detail = _HTTP_DETAILS.get(status) or (exc.description or exc.name)
    headers = {}
    if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    if status == 413:
        detail = f"The request body is larger than the limit of {request.max_content_length} bytes."
        _drain_body()
    return ApiError(status, exc.name, detail, headers=headers)


# What is read (and dropped) of a refused body, at most, before answering.
DRAIN_BYTES = 1 << 20


def _drain_body() -> None:
    """Read what is left of a refused body (bounded) so the client reads our 413, not a connection reset.

    Closing a socket with unread request bytes makes the kernel send a reset, which can overtake the answer.
    """
    stream = request.environ.get("wsgi.input")
    remaining = min(request.content_length or DRAIN_BYTES, DRAIN_BYTES)
    try:
        while stream is not None and remaining > 0:
            chunk = stream.read(min(65536, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
    except (OSError, ValueError):
        return  # the client went away: nothing left to protect


def register_error_handlers(app: Flask) -> None:
    """Route every error, expected or not, through the problem helper."""

    @app.errorhandler(ApiError)
    def handle_api_error(exc: ApiError):
        return render_error(exc)

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException):
        return render_error(_from_http(exc))

    @app.errorhandler(JobConflict)
    def handle_conflict(exc: JobConflict):
        return render_error(ApiError(409, "Conflict", str(exc), slug="job-state-conflict"))

    @app.errorhandler(Throttled)
    def handle_throttled(exc: Throttled):
        return render_error(ApiError(429, "Too Many Requests", exc.reason, slug="too-many-jobs",
                                     headers={"Retry-After": str(exc.retry_after)}))

    @app.errorhandler(DBAPIError)
    def handle_database_error(exc: DBAPIError):
        _rollback_quietly()
        return render_error(database_problem(exc))

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        _rollback_quietly()
        return render_error(_internal_error())


def _internal_error() -> ApiError:
    # Log the traceback for operators; never send it to the client.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return ApiError(500, "Internal Server Error", "Something went wrong on our side; it has been logged.")


# SQLSTATEs of a server that refuses or drops connections: admin/crash shutdown, starting up, too many clients.
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "53300"}


def is_connection_failure(exc: DBAPIError) -> bool:
    """True when the database could not be reached or the connection was lost (not when a statement failed).

    SQLAlchemy flags a connection lost mid-statement with ``connection_invalidated``; a failed connect
    is an ``OperationalError`` that carries no server SQLSTATE (psycopg2's ``pgcode`` is None), or one of
    class 08 (connection exception). Other OperationalErrors (statement timeout 57014, deadlock 40P01)
    come from a working connection.
    """
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    code = getattr(exc.orig, "pgcode", None)
    return code is None or code.startswith("08") or code in _UNAVAILABLE_SQLSTATES


def database_problem(exc: DBAPIError) -> ApiError:
    """The problem a database error means to a client: 503 unreachable, 409 conflict, 422 bad value, else 500."""
    sqlstate = getattr(exc.orig, "pgcode", None)
    if is_connection_failure(exc):
        log.warning("database unavailable: %s", exc.orig.__class__.__name__)
        return ApiError(503, "Service Unavailable", "The database is unreachable right now; try again shortly.",
                        slug="database-unavailable", headers={"Retry-After": "5"})
    if isinstance(exc, IntegrityError):
        # The driver's message may quote stored values (other owners' data): log it, do not send it.
        log.warning("integrity error %s on %s %s: %s", sqlstate, request.method, request.path, exc.orig)
        return ApiError(409, "Conflict", "The request conflicts with data already stored "
                        "(a duplicate, or a reference to something that no longer exists).", slug="data-conflict")
    if isinstance(exc, DataError):
        log.warning("data error %s on %s %s: %s", sqlstate, request.method, request.path, exc.orig)
        return ApiError(422, "Unprocessable Content", "A value in the request cannot be stored: it is out of "
                        "range, too long or malformed for its field.", slug="invalid-data")
    return _internal_error()


def _rollback_quietly() -> None:
    from app.extensions import db

    try:
        db.session.rollback()
    except Exception:
        log.debug("rollback after error failed", exc_info=True)
