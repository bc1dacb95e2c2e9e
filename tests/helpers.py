"""Polling helpers shared by the integration tests."""
from __future__ import annotations

import time
from urllib.parse import urlsplit


def wait_for(predicate, timeout: float = 20, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def wait_for_state(client, job_id: str, states: set[str] | str, timeout: float = 20) -> dict:
    """Poll ``GET /jobs/{id}`` until the job is in one of ``states``; return its JSON."""
    wanted = {states} if isinstance(states, str) else states

    def check():
        body = client.get(f"/jobs/{job_id}").get_json()
        return body if body["state"] in wanted else None

    return wait_for(check, timeout, what=f"job {job_id} to reach {wanted}")


def submit(client, report: str = "demo", version: str = "v2", headers: dict | None = None, **params) -> dict:
    """POST a job and return its JSON, asserting the 202 contract."""
    response = client.post(f"/reports/{version}", json={"report": report, "params": params}, headers=headers or {})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    # The Location carries the job's read capability, for clients that keep no cookie (README, API).
    location = urlsplit(response.headers["Location"])
    assert location.path == f"/jobs/{body['id']}" and location.query.startswith("access="), location
    assert response.headers["Location"] == body["links"]["self"]
    return body
