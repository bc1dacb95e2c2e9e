"""The hub's routing and the socket session's protocol, with a fake socket: no web server, no worker (the fast
layer). The session's database reads go to the real PostgreSQL."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest

from app.channels import JobEventMessage, Namespace
from app.realtime.hub import QUEUE_SIZE, RESYNC, Hub, Subscriber


def message(job_id: str, owner: str, seq: int, state: str = "Processing") -> JobEventMessage:
    return JobEventMessage(job_id=job_id, owner=owner, report="demo", seq=seq, kind="state", state=state,
                           progress=0.0, message=f"event {seq}", attempt=1, ts=datetime.now(timezone.utc).isoformat())


def inbox(subscriber: Subscriber) -> list:
    items = []
    while not subscriber.inbox.empty():
        items.append(subscriber.inbox.get_nowait())
    return items


class FakeSocket:
    """What the session needs of a socket: frames it sent, messages the client sends."""

    def __init__(self, incoming: list[str] | None = None) -> None:
        self.sent: list[str] = []
        self.incoming = list(incoming or [])
        self.connected = True

    def send(self, data: str) -> None:
        self.sent.append(data)

    def receive(self, timeout: float | None = None) -> str | None:
        return self.incoming.pop(0) if self.incoming else None

    def close(self, reason: int | None = None, message: str | None = None) -> None:
        self.connected = False

    def frames(self) -> list[dict]:
        return [json.loads(f) for f in self.sent]


# -- the hub ------------------------------------------------------------------------------------------------

def test_the_hub_routes_a_job_to_its_watchers_an_owner_to_its_own_and_everything_to_operators():
    hub = Hub("redis://127.0.0.1:1/0", Namespace("unit"))  # routing only: its listener is never started
    job_watcher, alice_all, bob_all, operator = (Subscriber(owner="alice"), Subscriber(owner="alice"),
                                                 Subscriber(owner="bob"), Subscriber(owner=None))
    hub.watch_job(job_watcher, "job-1")
    for s in (alice_all, bob_all, operator):
        hub.watch_all(s)
    alices, bobs = message("job-1", "alice", 1), message("job-2", "bob", 1)
    hub.route(alices)
    hub.route(bobs)
    assert inbox(job_watcher) == [alices]
    assert inbox(alice_all) == [alices] and inbox(bob_all) == [bobs]  # never another owner's job
    assert sorted(m.job_id for m in inbox(operator)) == ["job-1", "job-2"]
    hub.remove(job_watcher)
    hub.route(message("job-1", "alice", 2))
    assert inbox(job_watcher) == []


def test_a_full_inbox_becomes_one_resync_instead_of_blocking_the_listener():
    subscriber = Subscriber(owner="alice")
    for seq in range(QUEUE_SIZE + 50):
        subscriber.offer(message("job-1", "alice", seq + 1))
    items = inbox(subscriber)
    assert RESYNC in items and len(items) <= 50  # the backlog was dropped for one re-read from the database


# -- the session --------------------------------------------------------------------------------------------

@pytest.fixture
def session_for(app):
    """A NotificationSession on a fake socket, for an owner, in an app context."""
    from app.realtime.session import NotificationSession

    hub = Hub("redis://127.0.0.1:1/0", Namespace("unit"))
    with app.test_request_context():
        yield lambda owner, ws=None: NotificationSession(ws or FakeSocket(), hub, owner, "json")


@pytest.mark.parametrize("raw, code", [
    ("{not json", "malformed-message"),
    ('{"type": "hello"}', "unknown-message"),
    ('{"type": "subscribe", "jobs": ["x"], "after_seq": -1}', "invalid-after-seq"),
    ('{"type": "subscribe", "jobs": 5}', "invalid-jobs"),
])
def test_a_bad_client_message_gets_an_error_frame_and_the_socket_stays_open(session_for, raw, code):
    session = session_for("user:alice")
    session.handle_client_message(raw)
    frames = session.ws.frames()
    assert [f.get("error") or f.get("code") for f in frames] == [code], frames
    assert session.ws.connected


def test_subscribing_to_an_unknown_or_foreign_job_says_job_not_found(session_for, app):
    from app.extensions import db
    from app.jobs.service import submit_job

    job_id = str(submit_job("user:bob", "demo", {"duration_seconds": 0, "steps": 1}).job.id)
    db.session.remove()
    session = session_for("user:alice")
    session.subscribe([job_id, str(uuid.uuid4())], after_seq=None)
    (frame,) = session.ws.frames()
    assert (frame.get("error") or frame.get("code")) == "job-not-found" and len(frame["jobs"]) == 2, frame
    assert session.tracked == {}


def test_own_job_gets_a_snapshot_then_each_live_event_once_and_in_order(session_for):
    from app.extensions import db
    from app.jobs.service import submit_job

    job = submit_job("user:carol", "demo", {"duration_seconds": 0, "steps": 1}).job
    job_id, seq = str(job.id), job.last_seq
    db.session.remove()
    session = session_for("user:carol")
    session.subscribe([job_id], after_seq=None)
    assert session.tracked == {job_id: seq}
    session.deliver(message(job_id, "user:carol", seq + 1))
    session.deliver(message(job_id, "user:carol", seq + 1))  # a duplicate: dropped
    session.deliver(message(job_id, "user:carol", seq))  # an old one: dropped
    frames = session.ws.frames()
    assert frames[0]["type"] == "snapshot" and frames[0]["job"]["id"] == job_id, frames[0]
    assert [f.get("seq") for f in frames[1:]] == [seq + 1], frames[1:]
