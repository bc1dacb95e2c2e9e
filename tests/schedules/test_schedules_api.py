"""The /schedules API against the real stack: create, read, change, pause/resume, run now, delete; owner scope;
bad input named field by field with nothing created; the per-owner cap."""
from __future__ import annotations

from datetime import datetime

import pytest

from tests.helpers import wait_for_state

MONDAY_7 = {"report": "demo", "params": {"duration_seconds": 0.2, "steps": 2}, "cron": "0 7 * * MON",
            "timezone": "Europe/Berlin"}


def create(client, **changes) -> dict:
    response = client.post("/schedules", json={**MONDAY_7, **changes})
    assert response.status_code == 201, response.get_json()
    assert response.headers["Location"] == f"/schedules/{response.get_json()['id']}"
    return response.get_json()


def count(client) -> int:
    return len(client.get("/schedules").get_json()["items"])


def test_create_and_read_a_schedule(client):
    body = create(client)
    assert body["enabled"] is True and body["misfire"] == "skip" and body["priority"] == 3
    assert body["description"] == "At 07:00, only on Monday (Europe/Berlin)"
    fires = body["next_fires"]
    assert len(fires) == 5
    for fire in fires:
        local, utc = datetime.fromisoformat(fire["local"]), datetime.fromisoformat(fire["utc"])
        assert local == utc and local.weekday() == 0 and (local.hour, local.minute) == (7, 0)
        assert utc.utcoffset().total_seconds() == 0
    assert body["next_fire_at"] == fires[0]["utc"]
    one = client.get(f"/schedules/{body['id']}").get_json()
    assert one["runs"] == [] and one["last_run"] is None and one["cron"] == "0 7 * * MON"
    assert body["id"] in [s["id"] for s in client.get("/schedules").get_json()["items"]]


def test_change_pause_resume_and_delete(client):
    body = create(client)
    changed = client.patch(f"/schedules/{body['id']}", json={"cron": "@daily", "timezone": "UTC", "misfire": "run_once"})
    assert changed.status_code == 200
    changed = changed.get_json()
    assert changed["description"] == "At 00:00 (UTC)" and changed["misfire"] == "run_once"
    assert datetime.fromisoformat(changed["next_fire_at"]).hour == 0
    paused = client.post(f"/schedules/{body['id']}/pause", json={}).get_json()
    assert paused["enabled"] is False and paused["next_fire_at"] is None and "resume" in paused["links"]
    resumed = client.post(f"/schedules/{body['id']}/resume", json={}).get_json()
    assert resumed["enabled"] is True and resumed["next_fire_at"] == changed["next_fire_at"]
    assert client.delete(f"/schedules/{body['id']}").status_code == 204
    assert client.get(f"/schedules/{body['id']}").status_code == 404


def test_run_now_creates_an_ordinary_linked_job_that_runs(client):
    body = create(client)
    response = client.post(f"/schedules/{body['id']}/run", json={})
    assert response.status_code == 202
    job = response.get_json()
    assert job["schedule_id"] == body["id"] and job["scheduled_for"] and job["priority"] == 3
    done = wait_for_state(client, job["id"], {"Succeeded", "Failed"}, timeout=30)
    assert done["state"] == "Succeeded" and done["result"] is not None
    one = client.get(f"/schedules/{body['id']}").get_json()
    assert [(r["job_id"], r["state"]) for r in one["runs"]] == [(job["id"], "Succeeded")]
    assert one["last_run"]["state"] == "Succeeded"
    # Deleting the schedule leaves its job, unlinked.
    client.delete(f"/schedules/{body['id']}")
    assert client.get(f"/jobs/{job['id']}").get_json()["schedule_id"] is None


def test_someone_elses_schedule_is_a_404_for_every_operation(client, other_client):
    body = create(client)
    sid = body["id"]
    calls = [other_client.get(f"/schedules/{sid}"), other_client.patch(f"/schedules/{sid}", json={"enabled": False}),
             other_client.post(f"/schedules/{sid}/pause", json={}), other_client.post(f"/schedules/{sid}/resume", json={}),
             other_client.post(f"/schedules/{sid}/run", json={}), other_client.delete(f"/schedules/{sid}"),
             other_client.get("/schedules/not-a-uuid")]
    assert [c.status_code for c in calls] == [404] * len(calls)
    assert sid not in [s["id"] for s in other_client.get("/schedules").get_json()["items"]]
    assert client.get(f"/schedules/{sid}").get_json()["enabled"] is True  # untouched


@pytest.mark.parametrize(("changes", "fields"), [
    ({"cron": "61 * * * *"}, ["cron"]),
    ({"cron": "0 7 * *"}, ["cron"]),
    ({"cron": "@often"}, ["cron"]),
    ({"timezone": "Europe/Atlantis"}, ["timezone"]),
    ({"params": {"duration_seconds": -1}}, ["params.duration_seconds"]),
    ({"params": {"colour": "red"}}, ["params.colour"]),
    ({"report": "nope"}, ["report"]),
    ({"misfire": "burst"}, ["misfire"]),
    ({"enabled": "yes"}, ["enabled"]),
])
def test_bad_input_is_422_naming_the_field_and_creates_nothing(client, changes, fields):
    before = count(client)
    response = client.post("/schedules", json={**MONDAY_7, **changes})
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert [e["field"] for e in response.get_json()["errors"]] == fields
    assert count(client) == before


def test_patch_with_bad_input_changes_nothing(client):
    body = create(client)
    response = client.patch(f"/schedules/{body['id']}", json={"cron": "0 25 * * *", "misfire": "run_once"})
    assert response.status_code == 422 and [e["field"] for e in response.get_json()["errors"]] == ["cron"]
    again = client.get(f"/schedules/{body['id']}").get_json()
    assert (again["cron"], again["misfire"]) == ("0 7 * * MON", "skip")


def test_an_interval_under_the_operator_minimum_is_422(app, client):
    app.config["LONGRUN_SCHEDULE_MIN_INTERVAL_SECONDS"] = 300
    try:
        response = client.post("/schedules", json={**MONDAY_7, "cron": "*/2 * * * *"})
        ok = client.post("/schedules", json={**MONDAY_7, "cron": "*/5 * * * *"})
    finally:
        app.config["LONGRUN_SCHEDULE_MIN_INTERVAL_SECONDS"] = 60
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "cron"
    assert "300" in response.get_json()["errors"][0]["message"]
    assert ok.status_code == 201


def test_the_per_owner_cap_is_429_and_creates_nothing(app, client):
    app.config["LONGRUN_MAX_SCHEDULES_PER_OWNER"] = 2
    try:
        create(client)
        create(client)
        response = client.post("/schedules", json=MONDAY_7)
    finally:
        app.config["LONGRUN_MAX_SCHEDULES_PER_OWNER"] = 100
    assert response.status_code == 429 and response.headers["Retry-After"]
    assert response.mimetype == "application/problem+json"
    assert count(client) == 2
