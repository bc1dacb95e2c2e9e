"""Backpressure (429 with Retry-After, nothing half-created) and security headers, cookies, error hygiene."""
import re
import threading

from app import create_app
from tests.helpers import submit

HTML = {"Accept": "text/html"}


def _long_job(client) -> str:
    return submit(client, duration_seconds=30, steps=30)["id"]


def test_unfinished_job_limit_answers_429_and_creates_nothing(app):
    client = create_app({"LONGRUN_MAX_WAITING_PER_OWNER": 5}).test_client()
    ids = [_long_job(client) for _ in range(5)]  # the limit: 5 waiting or running
    try:
        response = client.post("/reports/v2", json={})
        assert response.status_code == 429 and response.mimetype == "application/problem+json"
        assert int(response.headers["Retry-After"]) >= 1
        assert "limit is 5" in response.get_json()["detail"]
        assert client.get("/jobs").get_json()["total"] == 5
        # A page (htmx) shows the reason where the user looks.
        page = client.get("/", headers=HTML).get_data(as_text=True)
        token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
        htmx = client.post("/reports/v3", headers={"HX-Request": "true", "X-CSRFToken": token})
        assert htmx.status_code == 429 and htmx.headers["HX-Retarget"] == "#request-error"
        assert "limit is 5" in htmx.get_data(as_text=True)
    finally:
        for job_id in ids:
            client.delete(f"/jobs/{job_id}")
    # Cancelling frees the slots.
    assert client.post("/reports/v2", json={"params": {"duration_seconds": 0, "steps": 1}}).status_code == 202


def test_concurrent_requests_cannot_slip_past_the_limit(app):
    racer = create_app({"LONGRUN_MAX_WAITING_PER_OWNER": 5}).test_client()
    racer.get("/jobs")  # one owner, shared cookie
    statuses: list[int] = []

    def post() -> None:
        statuses.append(racer.post("/reports/v2", json={"params": {"duration_seconds": 30}}).status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert statuses.count(202) == 5 and statuses.count(429) == 3, statuses
        assert racer.get("/jobs").get_json()["total"] == 5
    finally:
        for job in racer.get("/jobs").get_json()["items"]:
            racer.delete(f"/jobs/{job['id']}")


def test_creation_rate_limit(app):
    limited = create_app({"LONGRUN_MAX_JOBS_PER_MINUTE": 3, "LONGRUN_MAX_WAITING_PER_OWNER": 0})
    client = limited.test_client()
    ids = [client.post("/reports/v2", json={"params": {"duration_seconds": 0}}).get_json()["id"] for _ in range(3)]
    response = client.post("/reports/v2", json={})
    assert response.status_code == 429 and "in the last minute" in response.get_json()["detail"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert len(ids) == 3


def test_security_headers_and_cookie_flags(client):
    response = client.get("/", headers=HTML)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # Production sends the cookie over HTTPS only.
    prod = create_app({"LONGRUN_ENV": "production", "SESSION_COOKIE_SECURE": True})
    assert "Secure" in prod.test_client().get("/jobs").headers["Set-Cookie"]
    # Error responses carry the headers too.
    assert client.get("/nope").headers["X-Content-Type-Options"] == "nosniff"


def test_unexpected_errors_reveal_no_internals(app):
    broken = create_app()

    @broken.get("/boom")
    def boom():
        raise RuntimeError("secret internal detail at /work/main/app/x.py")

    for headers in ({}, HTML):
        response = broken.test_client().get("/boom", headers=headers)
        body = response.get_data(as_text=True)
        assert response.status_code == 500
        assert "Traceback" not in body and "/work/" not in body and "secret" not in body
