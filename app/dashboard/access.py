"""Who may see and steer every job: an operator credential, or a local request where the setting allows it."""
from __future__ import annotations

import hmac
import ipaddress

from flask import current_app, request
from werkzeug.http import parse_list_header

from app.errors import ApiError

OPERATOR = "operator"  # sees and acts
VIEWER = "viewer"  # sees only


# Headers a proxy uses to name the client; a request carrying any of them was relayed by someone.
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def client_address() -> str | None:
    """The client's address as far as it can be trusted; None when a forwarding header hides it.

    Forwarding headers are believed only from the ``LONGRUN_PROXY_COUNT`` trusted proxies, through
    ``X-Forwarded-For``: then ProxyFix (app/__init__.py) has already put the real client in ``remote_addr``.
    A request relayed by anyone else (or with fewer hops than trusted proxies) has no trustworthy
    address: a proxy on this host would otherwise make every visitor look local.
    """
    if not any(name in request.headers for name in FORWARDING_HEADERS):
        return request.remote_addr  # nobody claims to have relayed it: the peer is the client
    trusted = current_app.config["LONGRUN_PROXY_COUNT"]
    hops = parse_list_header(request.headers.get("X-Forwarded-For", ""))
    if trusted == 0 or len(hops) < trusted:
        return None
    return request.remote_addr


def is_local_request() -> bool:
    """True for loopback clients, judged by ``client_address``."""
    try:
        address = ipaddress.ip_address(client_address() or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1
    return address.is_loopback


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
    # "none" (the production default) or any other value grants nothing.
    local = current_app.config["LONGRUN_DASHBOARD_LOCAL_ROLE"]
    if local in (OPERATOR, VIEWER) and is_local_request():
        return local
    return None


def require_role(act: bool = False) -> str:
    """Raise 401 without a credential, 403 for a viewer who tries to act; return the role."""
    role = operator_role()
    if role is None:
        raise ApiError(401, "Unauthorized", "This needs an operator credential: HTTP Basic user 'operator' or "
                       "'viewer' (or a Bearer token). Without one only local requests are answered, and only where "
                       "LONGRUN_DASHBOARD_LOCAL_ROLE allows it.", slug="operator-required",
                       headers={"WWW-Authenticate": 'Basic realm="Longrun dashboard"'})
    if act and role != OPERATOR:
        raise ApiError(403, "Forbidden", "The viewer role can look but not act.", slug="read-only-role")
    return role
