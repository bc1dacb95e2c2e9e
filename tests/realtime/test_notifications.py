"""/notifications against a real gunicorn server, real Redis and real workers."""
import json
import time

import pytest
import websocket

from tests.helpers import wait_for
from tests.realtime.wsclient import Owner, is_final_event, live_events, read_until


@pytest.fixture
def owner(web):
    return Owner(web.url)


def test_events_arrive_in_order_with_the_seed_messages(owner):
    job = owner.submit(duration_seconds=0.6, steps=3)
    ws = owner.connect(f"job={job['id']}&after_seq=0")
    messages = read_until(ws, is_final_event(job["id"]))
    ws.close()
    assert messages[0]["type"] == "snapshot" and messages[0]["job"]["id"] == job["id"]
    events = live_events(messages, job["id"])
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, seqs[-1] + 1)), seqs  # every event, once, in order
    texts = [e["message"] for e in events]
    assert f"Started processing job with Id: {job['id']}" in texts
    assert texts[-1] == f"Completed processing job with Id: {job['id']}"
    assert events[-1]["state"] == "Succeeded" and events[-1]["progress"] == 100.0
    assert any(e["kind"] == "progress" for e in events)


def test_late_subscriber_gets_the_final_state_at_once(owner):
    job = owner.submit(duration_seconds=0, steps=1)
    wait_for(lambda: owner.job(job["id"])["final"], what="job to finish")
    ws = owner.connect(f"job={job['id']}")
    ws.settimeout(2)
    first = json.loads(ws.recv())
    ws.close()
    assert first["type"] == "snapshot" and first["job"]["state"] == "Succeeded" and first["job"]["final"]


def test_reconnect_with_after_seq_fills_the_gap(owner):
    job = owner.submit(duration_seconds=1.5, steps=5)
    ws = owner.connect(f"job={job['id']}")
    seen = read_until(ws, lambda m: m.get("type") == "event" and m.get("kind") == "progress")
    last_seq = live_events(seen, job["id"])[-1]["seq"]
    ws.close()  # the client drops; the job goes on without it
    wait_for(lambda: owner.job(job["id"])["final"], what="job to finish")
    ws = owner.connect()
    ws.send(json.dumps({"type": "subscribe", "jobs": [job["id"]], "after_seq": last_seq}))
    messages = read_until(ws, lambda m: m.get("type") == "event" and m["state"] == "Succeeded" and m["kind"] == "state")
    ws.close()
    snapshot, replayed = messages[0], live_events(messages, job["id"])
    assert snapshot["type"] == "snapshot" and snapshot["job"]["state"] == "Succeeded"
    assert [e["seq"] for e in replayed] == list(range(last_seq + 1, snapshot["job"]["last_seq"] + 1))
    assert all(e["replay"] for e in replayed)


def test_other_owner_receives_nothing_of_this_job(web, owner):
    stranger = Owner(web.url)
    spy = stranger.connect("all=1")
    job = owner.submit(duration_seconds=0.3, steps=2)
    spy.send(json.dumps({"type": "subscribe", "jobs": [job["id"]]}))
    spy.settimeout(1)
    refusal = json.loads(spy.recv())
    assert refusal["type"] == "error" and refusal["error"] == "job-not-found"
    wait_for(lambda: owner.job(job["id"])["final"], what="job to finish")
    spy.settimeout(1.5)
    leaked = []
    try:
        while True:
            leaked.append(json.loads(spy.recv()))
    except websocket.WebSocketTimeoutException:
        pass
    spy.close()
    assert not [m for m in leaked if job["id"] in json.dumps(m)]


def test_all_jobs_subscription_sees_new_jobs(owner):
    ws = owner.connect("all=1")
    job = owner.submit(duration_seconds=0.2, steps=1)
    messages = read_until(ws, is_final_event(job["id"]))
    ws.close()
    assert live_events(messages, job["id"])[0]["seq"] == 1


def test_malformed_messages_get_errors_and_the_socket_keeps_working(owner):
    ws = owner.connect()
    for bad, code in [("not json", "malformed-message"), ('{"type": "dance"}', "unknown-message"),
                      ('{"type": "subscribe", "jobs": 5}', "invalid-jobs"),
                      ('{"type": "subscribe", "jobs": ["x"], "after_seq": -1}', "invalid-after-seq"),
                      ('{"type": "subscribe", "jobs": ["not-a-uuid"]}', "job-not-found")]:
        ws.send(bad)
        ws.settimeout(2)
        reply = json.loads(ws.recv())
        assert reply["type"] == "error" and reply["error"] == code, (bad, reply)
    job = owner.submit(duration_seconds=0, steps=1)
    ws.send(json.dumps({"type": "subscribe", "jobs": [job["id"]]}))
    read_until(ws, is_final_event(job["id"]))
    ws.close()


def test_foreign_origin_is_refused(owner, web):
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        owner.connect(origin="http://evil.example")
    assert info.value.status_code == 403
    ws = owner.connect(origin=web.url)  # same origin is fine
    ws.close()


def test_html_format_pushes_the_status_fragment_and_notifications(owner):
    job = owner.submit(duration_seconds=0.2, steps=2)
    ws = owner.connect(f"job={job['id']}&format=html")
    frames = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ws.settimeout(5)
        frames.append(ws.recv())
        if "Completed processing job" in frames[-1]:
            break
    ws.close()
    assert frames[0].startswith(f'<div id="job-{job["id"]}-status"')
    assert 'data-state="Succeeded"' in frames[-1]
    assert f'id="job-{job["id"]}-notifications" hx-swap-oob="beforeend"' in frames[-1]


def test_out_of_order_event_is_gap_filled_and_releases_the_database(app, web):
    """An event that overtakes another is preceded by the missing one, read from PostgreSQL."""
    import uuid
    from datetime import timedelta

    import psycopg2
    import redis as redis_lib

    from app.channels import Namespace
    from app.extensions import db
    from app.jobs.counters import record_transition
    from app.jobs.lifecycle import append_event, event_message
    from app.jobs.models import Job, utcnow
    from app.jobs.states import JobState
    from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL

    token = app.test_cli_runner().invoke(args=["tokens", "create", "gap-owner"]).output.strip()
    with app.app_context():
        # A heartbeat far ahead: the clock's sweep must not rescue this hand-made "running" job meanwhile
        # (it would append its own events and race the test's numbering).
        job = Job(id=uuid.uuid4(), owner="user:gap-owner", report="demo", params={}, state="Processing",
                  attempts=1, max_attempts=3, last_seq=0, progress=0.0,
                  heartbeat_at=utcnow() + timedelta(hours=1))
        db.session.add(job)
        record_transition(job, None, JobState.PROCESSING)  # a row written by hand must keep the gauges true
        append_event(job, "state", "Started")
        db.session.commit()
        job_id = str(job.id)
    ws = websocket.create_connection(web.url.replace("http", "ws") + f"/notifications?job={job_id}",
                                     header=[f"Authorization: Bearer {token}"], timeout=10)
    assert json.loads(ws.recv())["type"] == "snapshot"
    with app.app_context():
        job = db.session.get(Job, uuid.UUID(job_id))
        append_event(job, "progress", "two")  # committed, never published: as if its publish came late
        job.progress = 50.0
        third = append_event(job, "progress", "three")
        message = event_message(job, third)
        db.session.commit()
    redis_lib.Redis.from_url(TEST_REDIS_URL).publish(Namespace.of(app.config).job_events, message.to_json())
    received = [json.loads(ws.recv()), json.loads(ws.recv())]
    assert [(m["seq"], m["message"]) for m in received] == [(2, "two"), (3, "three")]
    # While the socket stays open, its thread must not sit on a transaction (and a pooled connection).
    conn = psycopg2.connect(TEST_DATABASE_URL.replace("+psycopg2", ""))
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'idle in transaction' AND query LIKE '%job_events%' AND pid <> pg_backend_pid()")
        assert cur.fetchone()[0] == 0
    conn.close()
    ws.close()
    # The hand-made job counts as one job in flight: end it, or it holds one of the shared worker's two slots
    # for the rest of the run (the heartbeat ahead keeps the sweep from ever rescuing it).
    from app.jobs.lifecycle import transition

    with app.app_context():
        transition(job_id, JobState.CANCELLED, "Cancelled: the test is over")
