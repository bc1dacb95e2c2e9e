"""Result reuse (issue 15): the same report and parameters by the same owner within the report's window answer
with the job already there (202 while it runs, 200 once it succeeded, ``Longrun-Reused: true``); a request can
opt out; other owners, other parameters, failed jobs and reports without a window get their own run."""
from __future__ import annotations

from app.reports import get_report
from tests.helpers import wait_for_state

SUMMARY = {"report": "sales_summary", "params": {"group_by": "month", "date_from": "2001-01-01"}}


def post(client, body: dict, **headers):
    return client.post("/reports/v2", json=body, headers=headers)


def test_the_same_summary_asked_again_is_the_one_already_made(app, client, other_client):
    assert get_report("sales_summary").reuse_seconds == 300 and get_report("demo").reuse_seconds == 0
    seeded = app.test_cli_runner().invoke(args=["sales", "seed", "3000", "--replace", "--seed", "3"])
    assert seeded.exit_code == 0, seeded.output
    first = post(client, SUMMARY)
    assert first.status_code == 202 and "Longrun-Reused" not in first.headers
    job = first.get_json()["id"]

    running = post(client, SUMMARY)  # still waiting or running: the same job, 202
    assert running.status_code == 202 and running.headers["Longrun-Reused"] == "true"
    assert running.get_json()["id"] == job and running.headers["Location"].split("?")[0] == f"/jobs/{job}"

    wait_for_state(client, job, "Succeeded", timeout=60)
    done = post(client, SUMMARY)  # succeeded: the same job, 200, its result downloadable at once
    assert done.status_code == 200 and done.headers["Longrun-Reused"] == "true" and done.get_json()["id"] == job
    assert done.get_json()["links"]["result"]
    # The same parameters spelled with their defaults are the same request.
    spelled = post(client, {**SUMMARY, "params": {**SUMMARY["params"], "chunk_size": 20000}})
    assert spelled.get_json()["id"] == job

    fresh = post(client, SUMMARY, **{"Cache-Control": "no-cache"})  # asked for a new run
    assert fresh.status_code == 202 and "Longrun-Reused" not in fresh.headers and fresh.get_json()["id"] != job
    other_params = post(client, {**SUMMARY, "params": {"group_by": "region"}})
    assert "Longrun-Reused" not in other_params.headers and other_params.get_json()["id"] not in (job, fresh.get_json()["id"])
    someone_else = post(other_client, SUMMARY)
    assert "Longrun-Reused" not in someone_else.headers and someone_else.get_json()["id"] != job
    for body in (fresh, other_params, someone_else):
        wait_for_state(client if body is not someone_else else other_client, body.get_json()["id"], "Succeeded",
                       timeout=60)


def test_a_failed_job_or_a_report_without_a_window_runs_again(client):
    refused = {"report": "sales_summary", "params": {"date_from": "2024-02-01", "date_to": "2024-01-01"}}
    first = post(client, refused).get_json()["id"]
    wait_for_state(client, first, "Failed", timeout=30)
    again = post(client, refused)
    assert "Longrun-Reused" not in again.headers and again.get_json()["id"] != first
    demo = {"report": "demo", "params": {"duration_seconds": 0, "steps": 1}}
    one, two = post(client, demo).get_json()["id"], post(client, demo).get_json()["id"]
    assert one != two  # demo: off by default
    for job in (again.get_json()["id"], one, two):
        wait_for_state(client, job, {"Succeeded", "Failed"}, timeout=30)
