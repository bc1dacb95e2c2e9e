"""Jobs asked for later, end to end: Scheduled, visible and cancellable, Enqueued by the real clock when due,
then run by the real worker; out-of-bounds times answer 422 and create nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.helpers import wait_for_state


def _states(client, job_id: str) -> list[str]:
    events = client.get(f"/jobs/{job_id}/events").get_json()["items"]
    return [e["state"] for e in events if e["kind"] == "state"]


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_delayed_job_waits_scheduled_then_runs(client, version):
    response = client.post(f"/reports/{version}", json={"report": "demo", "delay_seconds": 3,
                                                         "params": {"duration_seconds": 0.2, "steps": 2}})
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["state"] == "Scheduled" and not job["final"]
    due = datetime.fromisoformat(job["scheduled_for"])
    assert due > datetime.fromisoformat(job["created_at"]) + timedelta(seconds=2.5)
    listed = client.get("/jobs?state=Scheduled").get_json()["items"]
    assert job["id"] in [j["id"] for j in listed]
    assert client.get(f"/jobs/{job['id']}").get_json()["state"] == "Scheduled"  # 1 s later: still waiting

    done = wait_for_state(client, job["id"], {"Succeeded", "Failed"}, timeout=30)
    assert done["state"] == "Succeeded"
    assert datetime.fromisoformat(done["started_at"]) >= due  # not a moment before its time
    assert _states(client, job["id"])[:3] == ["Scheduled", "Enqueued", "Processing"]


def test_run_at_in_rfc3339_with_an_offset(client):
    due = (datetime.now(timezone.utc) + timedelta(seconds=2)).astimezone(timezone(timedelta(hours=-5)))
    response = client.post("/reports/v2", json={"report": "demo", "run_at": due.isoformat(),
                                                "params": {"duration_seconds": 0.1, "steps": 1}})
    assert response.status_code == 202
    job = response.get_json()
    assert datetime.fromisoformat(job["scheduled_for"]) == due
    assert wait_for_state(client, job["id"], "Succeeded", timeout=30)["schedule_id"] is None


def test_a_scheduled_job_can_be_cancelled_and_never_runs(client):
    job = client.post("/reports/v2", json={"report": "demo", "delay_seconds": 2}).get_json()
    cancelled = client.delete(f"/jobs/{job['id']}")
    assert cancelled.status_code == 200 and cancelled.get_json()["state"] == "Cancelled"
    import time

    time.sleep(3.5)  # past its due time: the clock must leave it alone
    body = client.get(f"/jobs/{job['id']}").get_json()
    assert body["state"] == "Cancelled" and body["started_at"] is None
    assert _states(client, job["id"]) == ["Scheduled", "Cancelled"]


@pytest.mark.parametrize(("body", "field"), [
    ({"run_at": "2001-01-01T00:00:00Z"}, "run_at"),
    ({"run_at": "2999-01-01T00:00:00Z"}, "run_at"),
    ({"run_at": "tomorrow"}, "run_at"),
    ({"delay_seconds": -3}, "delay_seconds"),
    ({"delay_seconds": 400 * 86400}, "delay_seconds"),
    ({"delay_seconds": 5, "run_at": "2030-01-01T00:00:00Z"}, "delay_seconds"),
])
def test_out_of_bounds_times_are_422_naming_the_field_and_create_nothing(client, body, field):
    before = client.get("/jobs").get_json()["total"]
    response = client.post("/reports/v2", json={"report": "demo", **body})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert [e["field"] for e in response.get_json()["errors"]] == [field]
    assert client.get("/jobs").get_json()["total"] == before


def test_the_page_form_accepts_a_delay(client):
    client.get("/")  # session and CSRF token
    with client.session_transaction() as session:
        token = session["csrf_token"]
    response = client.post("/jobs/new", data={"csrf_token": token, "report": "demo", "duration_seconds": "0.1",
                                              "steps": "1", "delay_seconds": "60"})
    assert response.status_code == 303
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    job = client.get(f"/jobs/{job_id}").get_json()
    assert job["state"] == "Scheduled"
    client.delete(f"/jobs/{job_id}")
    bad = client.post("/jobs/new", data={"csrf_token": token, "report": "demo", "run_at": "2001-01-01T00:00:00Z"})
    assert bad.status_code == 422 and b"is in the past" in bad.data


def test_the_job_page_says_when_a_scheduled_job_starts(client):
    job = client.post("/reports/v2", json={"report": "demo", "delay_seconds": 120}).get_json()
    page = client.get(f"/jobs/{job['id']}", headers={"Accept": "text/html"})
    due = datetime.fromisoformat(job["scheduled_for"])
    assert page.status_code == 200 and b'data-state="Scheduled"' in page.data
    assert f"Starts at\n    <time datetime=\"{due.isoformat()}\"".encode() in page.data
    client.delete(f"/jobs/{job['id']}")
