"""Nothing is lost: dead worker processes, a dead broker at publish time."""
import os
import signal

from app import create_app
from tests.conftest import WorkerProcess
from tests.helpers import submit, wait_for, wait_for_state


def _pool_pid(client, job_id: str) -> int:
    worker = wait_for(lambda: client.get(f"/jobs/{job_id}").get_json().get("progress", {}).get("done")
                      and _worker_of(client, job_id), what="job to run")
    return int(worker.rsplit(":", 1)[1])


def _worker_of(client, job_id):
    from app.extensions import db
    from app.jobs.models import Job

    with client.application.app_context():
        return db.session.get(Job, __import__("uuid").UUID(job_id)).worker


def test_sigkill_of_the_pool_process_retries_the_job(client):
    job = submit(client, duration_seconds=3, steps=6)
    os.kill(_pool_pid(client, job["id"]), signal.SIGKILL)
    done = wait_for_state(client, job["id"], {"Succeeded", "Failed"}, timeout=30)
    assert done["state"] == "Succeeded" and done["attempts"] == 2
    messages = [e["message"] for e in client.get(f"/jobs/{job['id']}/events").get_json()["items"]]
    # Recovered either by the redelivered message (pool process found dead) or by the sweep (stale heartbeat).
    assert any("was lost" in m or "no heartbeat" in m for m in messages), messages


def test_sigkill_of_the_whole_worker_is_rescued_by_the_sweep(app, client):
    # A worker of its own on its own queue, so the job surely runs there first.
    lone = WorkerProcess("doomed", {"LONGRUN_QUEUE": "doomed"}, concurrency=1, clock=False)
    try:
        doomed_app = create_app({"LONGRUN_QUEUE": "doomed"})
        doomed_client = doomed_app.test_client()
        job = submit(doomed_client, duration_seconds=4, steps=8)
        wait_for(lambda: doomed_client.get(f"/jobs/{job['id']}").get_json()["progress"]["done"], what="a step")
        lone.kill_group()
    finally:
        lone.stop()
    # The main worker's sweep sees the stale heartbeat and runs the job again.
    done = wait_for_state(doomed_client, job["id"], {"Succeeded", "Failed"}, timeout=40)
    assert done["state"] == "Succeeded" and done["attempts"] == 2
    messages = [e["message"] for e in doomed_client.get(f"/jobs/{job['id']}/events").get_json()["items"]]
    assert any("no heartbeat" in m for m in messages), messages


def test_job_survives_a_broker_outage_at_publish_time(app, client):
    offline_app = create_app({"REDIS_URL": "redis://127.0.0.1:1/15"})
    offline = offline_app.test_client()
    response = offline.post("/reports/v2", json={"params": {"duration_seconds": 0, "steps": 1}})
    # The row is committed before publishing: the job is accepted and the sweep publishes it later.
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    done = wait_for_state(offline, job_id, "Succeeded", timeout=30)
    assert done["attempts"] == 1
