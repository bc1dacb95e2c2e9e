"""The seed's contract and the job lifecycle, through a real Celery worker."""
import time
from datetime import datetime

from app.extensions import db
from app.jobs.models import JobEvent
from tests.helpers import submit, wait_for, wait_for_state


def test_v1_blocks_then_answers_completed(client):
    started = time.monotonic()
    response = client.get("/reports/v1")  # LONGRUN_V1_SECONDS=1 in tests (10 s by default)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Completed"
    assert time.monotonic() - started >= 1.0


def test_v2_enqueues_and_job_succeeds_with_full_progress(client):
    job = submit(client, duration_seconds=0.3, steps=3)
    assert job["state"] == "Enqueued" and job["links"]["self"].startswith(f"/jobs/{job['id']}?access=")
    done = wait_for_state(client, job["id"], "Succeeded")
    assert done["progress"]["percent"] == 100.0
    assert done["progress"]["done"] == done["progress"]["total"] == 3
    assert done["attempts"] == 1 and done["started_at"] and done["finished_at"]
    download = client.get(done["links"]["result"])
    assert download.status_code == 200 and download.data.startswith(b"Completed 3 steps")


def test_v3_job_history_carries_the_seed_messages(client):
    job = submit(client, version="v3", duration_seconds=0.2, steps=2)
    wait_for_state(client, job["id"], "Succeeded")
    events = client.get(f"/jobs/{job['id']}/events").get_json()["items"]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    messages = [e["message"] for e in events]
    assert f"Started processing job with Id: {job['id']}" in messages
    assert messages[-1] == f"Completed processing job with Id: {job['id']}"
    after = client.get(f"/jobs/{job['id']}/events?after_seq={seqs[-2]}").get_json()["items"]
    assert [e["seq"] for e in after] == [seqs[-1]]


def test_job_that_fails_twice_then_succeeds_shows_three_attempts(client):
    job = submit(client, duration_seconds=0.1, steps=1, fail_times=2)
    done = wait_for_state(client, job["id"], {"Succeeded", "Failed"}, timeout=30)
    assert done["state"] == "Succeeded" and done["attempts"] == 3 and done["error"] is None
    states = [e["state"] for e in client.get(f"/jobs/{job['id']}/events").get_json()["items"] if e["kind"] == "state"]
    assert states == ["Enqueued", "Processing", "Retrying", "Processing", "Retrying", "Processing", "Succeeded"]


def test_job_that_keeps_failing_ends_failed_with_its_error(client):
    job = submit(client, duration_seconds=0, steps=1, fail_times=5)
    done = wait_for_state(client, job["id"], {"Succeeded", "Failed"}, timeout=30)
    assert done["state"] == "Failed" and done["attempts"] == 3
    assert done["error"]["type"] == "PlannedFailure" and "attempt 3" in done["error"]["message"]
    assert "traceback" not in done["error"]  # operators only
    assert client.get(f"/jobs/{job['id']}/result").status_code == 409
    # A failed job can be retried by its owner: it starts over with a fresh attempt budget.
    again = client.post(f"/jobs/{job['id']}/retry", json={})
    assert again.status_code == 202 and again.get_json()["state"] == "Enqueued"
    final = wait_for_state(client, job["id"], {"Failed"}, timeout=30)
    assert final["attempts"] == 3


def test_cancel_running_job_stops_within_two_seconds(client):
    job = submit(client, duration_seconds=20, steps=20)
    wait_for_state(client, job["id"], "Processing")
    wait_for(lambda: client.get(f"/jobs/{job['id']}").get_json()["progress"]["done"], what="first step")
    asked = time.monotonic()
    response = client.delete(f"/jobs/{job['id']}")
    assert response.status_code == 202 and response.get_json()["cancel_requested"] is True
    done = wait_for_state(client, job["id"], "Cancelled", timeout=5)
    assert time.monotonic() - asked < 2.5  # "within a second or two", plus this test's polling
    assert done["progress"]["percent"] < 100
    assert client.delete(f"/jobs/{job['id']}").status_code == 409  # nothing left to cancel


def test_cancelled_queued_job_never_runs(client):
    # Two long jobs occupy both worker processes, so the third waits in the queue.
    blockers = [submit(client, duration_seconds=30, steps=60) for _ in range(2)]
    for blocker in blockers:
        wait_for_state(client, blocker["id"], "Processing")
    queued = submit(client, duration_seconds=0.1, steps=1)
    response = client.post(f"/jobs/{queued['id']}/cancel", json={})
    assert response.status_code == 200 and response.get_json()["state"] == "Cancelled"
    for blocker in blockers:  # free the workers: they now take the cancelled job's message, and drop it
        client.delete(f"/jobs/{blocker['id']}")
        wait_for_state(client, blocker["id"], "Cancelled")
    time.sleep(1.0)  # the worker has consumed the queued message by now
    body = client.get(f"/jobs/{queued['id']}").get_json()
    assert body["state"] == "Cancelled" and body["attempts"] == 0 and body["started_at"] is None
    # ... and it can be brought back on purpose.
    assert client.post(f"/jobs/{queued['id']}/retry", json={}).status_code == 202
    assert wait_for_state(client, queued["id"], "Succeeded")["attempts"] == 1


def test_idempotency_key_returns_same_job_and_rejects_other_body(client):
    headers = {"Idempotency-Key": "order-42"}
    first = submit(client, headers=headers, duration_seconds=0.1, steps=1)
    replay = client.post("/reports/v2", json={"report": "demo", "params": {"duration_seconds": 0.1, "steps": 1}},
                         headers=headers)
    assert replay.status_code == 202 and replay.get_json()["id"] == first["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = client.post("/reports/v2", json={"report": "demo", "params": {"steps": 2}}, headers=headers)
    assert other.status_code == 422 and other.mimetype == "application/problem+json"
    assert "different request" in other.get_json()["detail"]


def test_progress_writes_are_throttled_but_the_last_value_is_kept(client, app):
    job = submit(client, duration_seconds=0.5, steps=1000)
    done = wait_for_state(client, job["id"], "Succeeded")
    assert done["progress"]["done"] == 1000
    with app.app_context():
        samples = db.session.execute(
            db.select(db.func.count()).select_from(JobEvent)
            .where(JobEvent.job_id == db.func.cast(job["id"], db.Uuid), JobEvent.kind == "progress")
        ).scalar_one()
    # 1,001 ticks with a 50 ms flush interval: at most one write per interval the attempt lasted (plus the first
    # and the last), however slow a loaded machine made the ticks.
    took = (datetime.fromisoformat(done["finished_at"]) - datetime.fromisoformat(done["started_at"])).total_seconds()
    assert 2 <= samples <= took / 0.05 + 3 and samples <= 100, (samples, took)


def test_list_is_newest_first_filterable_and_paginated(client):
    ids = [submit(client, duration_seconds=0, steps=1)["id"] for _ in range(3)]
    for job_id in ids:
        wait_for_state(client, job_id, "Succeeded")
    page = client.get("/jobs?per_page=2").get_json()
    assert page["total"] == 3 and [j["id"] for j in page["items"]] == ids[::-1][:2]
    assert "next" in page["links"]
    second = client.get(page["links"]["next"]).get_json()
    assert [j["id"] for j in second["items"]] == [ids[0]]
    assert client.get("/jobs?state=failed").get_json()["total"] == 0
    assert client.get("/jobs?state=Succeeded&report=demo").get_json()["total"] == 3
