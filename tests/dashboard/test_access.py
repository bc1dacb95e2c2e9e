"""Operator access behind a reverse proxy: production asks for a credential, forwarded requests are never local.

The threat: nginx or Caddy on the same host proxies to gunicorn on 127.0.0.1, so every visitor's
connection comes from loopback. Fast checks run on fresh apps (Flask's test client connects from
127.0.0.1); the same rules are then shown on real gunicorn servers.
"""
from __future__ import annotations

import base64

import pytest
import requests

from app import create_app
from app.config import ConfigError, load_config
from tests.conftest import WebServer

pytestmark = pytest.mark.slow  # starts gunicorn

OPERATOR_SECRET = "op-secret"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"operator:{OPERATOR_SECRET}".encode()).decode()}
PATHS = ("/metrics", "/dashboard/")
# What a proxy sends on behalf of a visitor; a client can send the same itself.
RELAYED = [
    {"X-Forwarded-For": "127.0.0.1"},
    {"X-Forwarded-For": "203.0.113.9"},
    {"X-Real-IP": "127.0.0.1"},
    {"Forwarded": "for=127.0.0.1"},
]


def _app(**settings):
    return create_app({"LONGRUN_OPERATOR_TOKEN": OPERATOR_SECRET, **settings}).test_client()


def _statuses(client, headers: dict | None = None) -> set[int]:
    return {client.get(path, headers=headers or {}).status_code for path in PATHS}


# -- configuration --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "role"), [("production", "none"), ("development", "operator"), ("testing", "operator")])
def test_local_role_defaults_to_none_only_in_production(monkeypatch, env, role):
    monkeypatch.setenv("LONGRUN_ENV", env)
    monkeypatch.delenv("LONGRUN_DASHBOARD_LOCAL_ROLE", raising=False)
    assert load_config()["LONGRUN_DASHBOARD_LOCAL_ROLE"] == role


def test_local_role_typo_is_a_start_up_error(monkeypatch):
    monkeypatch.setenv("LONGRUN_DASHBOARD_LOCAL_ROLE", "admin")
    with pytest.raises(ConfigError, match="LONGRUN_DASHBOARD_LOCAL_ROLE must be one of operator, viewer, none"):
        load_config()


# -- production: a credential is needed, even from this host -------------------------------------------------

def test_production_refuses_local_requests_without_a_credential(app):
    prod = _app(LONGRUN_ENV="production")
    assert _statuses(prod) == {401}
    problem = prod.get("/metrics")
    assert problem.mimetype == "application/problem+json" and problem.headers["WWW-Authenticate"].startswith("Basic")
    assert _statuses(prod, BASIC) == {200}


def test_production_local_access_when_explicitly_allowed(app):
    prod = _app(LONGRUN_ENV="production", LONGRUN_DASHBOARD_LOCAL_ROLE="viewer")
    assert _statuses(prod) == {200}
    page = prod.get("/dashboard/", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "signed in as viewer (read-only)" in page  # the allowed role, not more


# -- forwarding headers: never local unless they came through the trusted proxies ------------------------------

@pytest.mark.parametrize("relayed", RELAYED, ids=lambda h: "-".join(f"{k}={v}" for k, v in h.items()))
def test_relayed_request_is_not_local_without_trusted_proxies(app, relayed):
    local_allowed = _app(LONGRUN_DASHBOARD_LOCAL_ROLE="operator")
    assert _statuses(local_allowed) == {200}  # control: the same request, not relayed
    assert _statuses(local_allowed, relayed) == {401}
    assert _statuses(local_allowed, {**relayed, **BASIC}) == {200}


@pytest.mark.parametrize(("headers", "status"), [
    ({"X-Forwarded-For": "127.0.0.1"}, 200),  # the trusted proxy says the client is on this host
    ({"X-Forwarded-For": "203.0.113.9"}, 401),
    ({"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}, 401),  # the client's own claim, then the proxy's entry
    ({"X-Real-IP": "127.0.0.1"}, 401),  # not the header the proxies are trusted for: no address at all
    ({"Forwarded": "for=127.0.0.1"}, 401),
    ({"X-Forwarded-For": "::ffff:127.0.0.1"}, 200),
])
def test_behind_trusted_proxies_the_real_client_address_decides(app, headers, status):
    proxied = _app(LONGRUN_DASHBOARD_LOCAL_ROLE="operator", LONGRUN_PROXY_COUNT=1)
    assert _statuses(proxied, headers) == {status}


def test_fewer_hops_than_trusted_proxies_is_not_local(app):
    two_proxies = _app(LONGRUN_DASHBOARD_LOCAL_ROLE="operator", LONGRUN_PROXY_COUNT=2)
    assert _statuses(two_proxies, {"X-Forwarded-For": "127.0.0.1"}) == {401}
    assert _statuses(two_proxies, {"X-Forwarded-For": "127.0.0.1, 10.0.0.2"}) == {200}


# -- the same on real gunicorn servers -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def production_web(app):
    """gunicorn in production mode with the defaults: no local role."""
    server = WebServer("access-prod", {"LONGRUN_ENV": "production", "LONGRUN_OPERATOR_TOKEN": OPERATOR_SECRET,
                                       "LONGRUN_INSECURE_COOKIES": "1"}, threads=4)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def same_host_proxy_web(app):
    """gunicorn in production, local access explicitly allowed, behind one proxy on this host (as nginx would be)."""
    server = WebServer("access-proxy", {"LONGRUN_ENV": "production", "LONGRUN_OPERATOR_TOKEN": OPERATOR_SECRET,
                                        "LONGRUN_INSECURE_COOKIES": "1", "LONGRUN_DASHBOARD_LOCAL_ROLE": "operator",
                                        "LONGRUN_PROXY_COUNT": "1"}, threads=4)
    yield server
    server.stop()


def _live(server: WebServer, headers: dict | None = None) -> set[int]:
    return {requests.get(server.url + path, headers=headers or {}, timeout=10).status_code for path in PATHS}


def test_gunicorn_in_production_wants_a_credential_from_localhost(production_web):
    assert _live(production_web) == {401}
    assert _live(production_web, {"X-Forwarded-For": "127.0.0.1"}) == {401}
    assert _live(production_web, BASIC) == {200}
    metrics = requests.get(production_web.url + "/metrics", headers=BASIC, timeout=10)
    assert "longrun_" in metrics.text


def test_gunicorn_behind_a_same_host_proxy_trusts_only_the_proxys_address(same_host_proxy_web):
    assert _live(same_host_proxy_web) == {200}  # a tool on the host itself, not relayed
    assert _live(same_host_proxy_web, {"X-Forwarded-For": "203.0.113.9"}) == {401}  # a visitor through the proxy
    assert _live(same_host_proxy_web, {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}) == {401}  # a forged hop
    assert _live(same_host_proxy_web, {"X-Real-IP": "127.0.0.1"}) == {401}
    assert _live(same_host_proxy_web, {"Forwarded": "for=127.0.0.1"}) == {401}
    assert _live(same_host_proxy_web, {"X-Forwarded-For": "127.0.0.1"}) == {200}
    assert _live(same_host_proxy_web, {"X-Forwarded-For": "203.0.113.9", **BASIC}) == {200}
