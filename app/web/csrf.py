"""CSRF protection for cookie-authenticated forms and htmx requests."""
from __future__ import annotations

import hmac
import secrets

from flask import current_app, g, request, session

from app.errors import ApiError

SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
HEADER = "X-CSRFToken"
FIELD = "csrf_token"


def csrf_token() -> str:
    """This session's token (created on first use); templates put it in forms and hx-headers."""
    token = session.get(FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[FIELD] = token
    return token


def needs_check() -> bool:
    """Which requests a cross-site page could forge with the user's cookie.

    Bearer-token calls carry no ambient credential; JSON bodies and DELETE need a CORS preflight,
    which a foreign site cannot pass. Forms, htmx calls and body-less POSTs can be forged.
    """
    if request.method in SAFE_METHODS or request.method in {"DELETE", "PUT", "PATCH"}:
        return False
    if getattr(g, "auth", None) == "bearer":
        return False
    if current_app.config["SESSION_COOKIE_NAME"] not in request.cookies:
        return False  # no cookie, no ambient authority to abuse
    if request.headers.get("HX-Request"):
        return True
    mimetype = request.mimetype or ""
    return not (mimetype == "application/json" or mimetype.endswith("+json"))


def check_csrf() -> None:
    """Refuse a forgeable request without the session's token (``before_request``)."""
    if request.path == "/notifications" or not needs_check():
        return
    sent = request.headers.get(HEADER) or (request.form.get(FIELD) if request.mimetype in
                                          {"application/x-www-form-urlencoded", "multipart/form-data"} else None)
    expected = session.get(FIELD)
    if not sent or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise ApiError(403, "CSRF Check Failed",
                       "This request needs the page's CSRF token (reload the page and try again), or a JSON body "
                       "with 'Content-Type: application/json', or an 'Authorization: Bearer' token.",
                       slug="csrf-failed")
