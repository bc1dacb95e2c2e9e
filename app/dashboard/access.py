"""Who may see and steer every job: local requests by default, remote ones with an operator credential."""
from __future__ import annotations

import hmac
import ipaddress

from flask import current_app, request

from app.errors import ApiError

OPERATOR = "operator"  # sees and acts
VIEWER = "viewer"  # sees only


def is_local_request() -> bool:
    """True for loopback clients (after ProxyFix, when a proxy count is configured)."""
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _matches(given: str, configured: str) -> bool:
    return bool(configured) and hmac.compare_digest(given.encode(), configured.encode())


def credential_role() -> str | None:
    """The role an explicit credential grants: Basic ``operator``/``viewer`` or a Bearer token."""
    cfg = current_app.config
    tokens = {OPERATOR: cfg["LONGRUN_OPERATOR_TOKEN"], VIEWER: cfg["LONGRUN_VIEWER_TOKEN"]}
    auth = request.authorization
    if auth is None:
        return None
    if auth.type == "basic" and auth.username in tokens:
        return auth.username if _matches(auth.password or "", tokens[auth.username]) else None
    if auth.type == "bearer" and auth.token:
        for role, token in tokens.items():
            if _matches(auth.token, token):
                return role
    return None


def operator_role() -> str | None:
    """The caller's operator role, or None."""
    role = credential_role()
    if role is not None:
        return role
    if is_local_request():
        local = current_app.config["LONGRUN_DASHBOARD_LOCAL_ROLE"]
        return local if local in (OPERATOR, VIEWER) else None
    return None


def require_role(act: bool = False) -> str:
    """Raise 401 without a credential, 403 for a viewer who tries to act; return the role."""
    role = operator_role()
    if role is None:
        raise ApiError(401, "Unauthorized", "The dashboard answers local requests only; remote access needs an "
                       "operator credential (HTTP Basic user 'operator' or 'viewer').", slug="operator-required",
                       headers={"WWW-Authenticate": 'Basic realm="Longrun dashboard"'})
    if act and role != OPERATOR:
        raise ApiError(403, "Forbidden", "The viewer role can look but not act.", slug="read-only-role")
    return role
