"""The seed's flow for a client that keeps no cookies: POST, then GET the Location — and nothing more.

Every cookie-less request is a new anonymous owner, so the 202's Location carries the job's read
capability (``/jobs/{id}?access=<token>``). It opens that one job's status, events, result and live
notifications; it opens no other job and no action.
"""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import websocket

from app.owners.capability import grants_read, job_capability
from tests.helpers import submit, wait_for
from tests.realtime.wsclient import Owner, is_final_event, live_events, read_until

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["access"][0]


def _same_404(response, unknown) -> None:
    """A refused capability looks exactly like an unknown id."""
    assert response.status_code == unknown.status_code == 404, response.get_data(as_text=True)
    strip = lambda r: {k: v for k, v in r.get_json().items() if k != "instance"}  # noqa: E731
    assert strip(response) == strip(unknown)


@pytest.fixture
def curl(app, worker):
    """A client that keeps no cookies, like curl: every request is a new anonymous owner."""
    return app.test_client(use_cookies=False)


def test_cookieless_post_then_get_location_follows_the_job_to_its_result(curl):
    posted = curl.post("/reports/v2", json={"params": {"duration_seconds": 0.3, "steps": 3}})
    assert posted.status_code == 202
    location = posted.headers["Location"]
    job_id = posted.get_json()["id"]

    # Control: the bare job URL is someone else's job to this client (a new anonymous owner each time).
    assert curl.get(f"/jobs/{job_id}").status_code == 404

    status = curl.get(location)
    assert status.status_code == 200 and status.get_json()["id"] == job_id
    done = wait_for(lambda: (b := curl.get(location).get_json())["final"] and b, what="the job to finish")
    assert done["state"] == "Succeeded"
    links = done["links"]
    assert set(links) >= {"self", "events", "notifications", "result"}
    assert "cancel" not in links and "retry" not in links  # what only the owner may do is not offered
    assert all(_token(links[name]) == _token(location) for name in ("self", "events", "notifications", "result"))

    events = curl.get(links["events"])
    assert events.status_code == 200 and events.get_json()["items"][-1]["state"] == "Succeeded"
    download = curl.get(links["result"])
    assert download.status_code == 200 and download.data.startswith(b"Completed 3 steps")


def test_capability_opens_no_other_job(client, other_client, curl):
    mine = submit(client, duration_seconds=0, steps=1)
    theirs = submit(other_client, duration_seconds=0, steps=1)
    token = _token(mine["links"]["self"])
    for suffix in ("", "/events", "/result"):
        unknown = curl.get(f"/jobs/{UNKNOWN}{suffix}")
        _same_404(curl.get(f"/jobs/{theirs['id']}{suffix}?access={token}"), unknown)  # right token, other job
        _same_404(curl.get(f"/jobs/{UNKNOWN}{suffix}?access={token}"), unknown)
        for wrong in (token[:-1], token[:-1] + ("A" if token[-1] != "A" else "B"), token.upper(), "", "x" * 500):
            _same_404(curl.get(f"/jobs/{mine['id']}{suffix}?access={wrong}"), unknown)
    assert curl.get(f"/jobs/{mine['id']}?access={token}").status_code == 200  # control


def test_capability_alone_cannot_list_cancel_retry_or_delete(client, curl):
    # The failing job first: it must not wait behind the long one for a worker slot (two slots, and a test
    # before this one may still hold the other).
    failed = submit(client, report="demo", duration_seconds=0, steps=1, fail_times=10)
    # Waiting or running, never finished before the control below cancels it: unfinished is what counts.
    running = submit(client, duration_seconds=300, steps=300)
    wait_for(lambda: client.get(f"/jobs/{failed['id']}").get_json()["state"] == "Failed", timeout=30,
             what="the job to fail")
    run_token, failed_token = _token(running["links"]["self"]), _token(failed["links"]["self"])
    for method, path in [("post", f"/jobs/{running['id']}/cancel?access={run_token}"),
                         ("delete", f"/jobs/{running['id']}?access={run_token}"),
                         ("post", f"/jobs/{failed['id']}/retry?access={failed_token}")]:
        refused = getattr(curl, method)(path)
        _same_404(refused, getattr(curl, method)(path.replace(path.split("/")[2], UNKNOWN)))
    listing = curl.get(f"/jobs?access={run_token}").get_json()
    assert listing["total"] == 0 and listing["items"] == []
    # Nothing happened to either job: the owner sees them as they were.
    assert client.get(f"/jobs/{running['id']}").get_json()["cancel_requested"] is False
    assert client.get(f"/jobs/{failed['id']}").get_json()["state"] == "Failed"
    assert client.delete(f"/jobs/{running['id']}").status_code in (200, 202)  # control: the owner can


def test_owner_sees_its_own_page_and_links_without_the_capability(client):
    job = submit(client, duration_seconds=0, steps=1)
    own = client.get(job["links"]["self"]).get_json()  # the owner following its Location
    assert own["links"]["self"] == f"/jobs/{job['id']}"
    page = client.get(job["links"]["self"], headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.mimetype == "text/html"


def test_capability_is_bound_to_the_job_and_the_secret(app):
    with app.app_context():
        token = job_capability(UNKNOWN)
        assert len(token) == 22 and token == job_capability(UNKNOWN.upper())
        assert grants_read(UNKNOWN, ["nope", token]) and not grants_read(UNKNOWN, [None, "", "nope"])
        assert not grants_read("not-a-uuid", [token])
        app.config["SECRET_KEY"], secret = "another-secret", app.config["SECRET_KEY"]
        try:
            assert not grants_read(UNKNOWN, [token])  # rotating SECRET_KEY revokes every capability
        finally:
            app.config["SECRET_KEY"] = secret


def test_capability_opens_that_one_jobs_events_over_a_real_socket(web):
    """Through real gunicorn: the capability subscribes its job; another owner's job stays closed."""
    posted = requests.post(web.url + "/reports/v3", json={"params": {"duration_seconds": 1.5, "steps": 5}}, timeout=10)
    assert posted.status_code == 202
    job_id, token = posted.json()["id"], _token(posted.headers["Location"])
    other = Owner(web.url)
    foreign = other.submit(duration_seconds=1.5, steps=5)["id"]

    ws_url = web.url.replace("http://", "ws://") + "/notifications"
    ws = websocket.create_connection(f"{ws_url}?job={job_id}&job={foreign}&access={token}&after_seq=0", timeout=10)
    try:
        messages = read_until(ws, is_final_event(job_id), timeout=30)
        ws.send(json.dumps({"type": "subscribe", "jobs": [foreign], "after_seq": 0}))
        messages += read_until(ws, lambda m: m.get("type") == "error", timeout=10)
        wait_for(lambda: other.job(foreign)["final"], what="the other owner's job to finish")
        ws.settimeout(1.5)
        try:
            messages.append(json.loads(ws.recv()))  # anything the other job might still leak
        except websocket.WebSocketTimeoutException:
            pass
    finally:
        ws.close()
    snapshots = [m for m in messages if m.get("type") == "snapshot"]
    assert [m["job"]["id"] for m in snapshots] == [job_id]
    assert "cancel" not in snapshots[0]["job"]["links"]  # the capability reads; acting stays with the owner
    events = live_events(messages, job_id)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, seqs[-1] + 1)), seqs  # recorded, then live: every event once, in order
    assert any(not e["replay"] for e in events), "live events of the job reach the capability's socket"
    errors = [m for m in messages if m.get("type") == "error"]
    assert [e["error"] for e in errors] == ["job-not-found", "job-not-found"], errors  # URL, then message
    assert all(foreign in json.dumps(e) for e in errors)
    assert not [m for m in messages if foreign in json.dumps(m) and m.get("type") != "error"]

    # Control: the wrong token opens nothing, the job's own owner-less socket gets only an error.
    ws = websocket.create_connection(f"{ws_url}?job={job_id}&access={token[:-2]}", timeout=10)
    try:
        first = json.loads(ws.recv())
    finally:
        ws.close()
    assert first["type"] == "error" and first["error"] == "job-not-found"
