"""A subscribe message costs a fixed number of queries and frames, whatever it names (real PostgreSQL)."""
import json
import uuid

import pytest
from sqlalchemy import event

from app.channels import SOCKET_FRAME_KEYS
from app.extensions import db
from app.jobs.lifecycle import append_event
from app.jobs.models import Job
from app.realtime.hub import Subscriber
from app.realtime.session import MAX_JOBS_PER_SOCKET, NotificationSession


class RecordingSocket:
    """Stands in for the WebSocket only: what the session sends is recorded."""

    connected = True

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, data: str) -> None:
        self.sent.append(json.loads(data))

    def receive(self, timeout: float | None = None) -> None:
        return None


class RoutingOff:
    """Live routing is not under test here (tests/realtime/test_notifications.py covers it)."""

    def watch_job(self, subscriber: Subscriber, job_id: str) -> None:
        subscriber.job_ids.add(job_id)


def make_jobs(owner: str, count: int, events: int = 2) -> list[str]:
    """Finished jobs of ``owner`` with ``events`` recorded events each, written straight to PostgreSQL."""
    ids = []
    for _ in range(count):
        job = Job(id=uuid.uuid4(), owner=owner, report="demo", params={}, state="Succeeded", attempts=1,
                  max_attempts=3, last_seq=0, progress=100.0)
        db.session.add(job)
        for n in range(events):
            append_event(job, "state", f"event {n + 1}")
        ids.append(str(job.id))
    db.session.commit()
    return ids


@pytest.fixture
def statements(app):
    """The SQL statements run while the test body runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        seen.append(statement)

    with app.test_request_context():
        event.listen(db.engine, "before_cursor_execute", record)
        yield seen
        event.remove(db.engine, "before_cursor_execute", record)


def test_one_query_finds_every_job_of_a_message_and_one_reads_their_events(app, statements):
    owner = f"user:subscribe-{uuid.uuid4().hex[:8]}"
    mine = make_jobs(owner, 10)
    foreign = make_jobs("user:someone-else", 1)
    unknown = [str(uuid.uuid4()) for _ in range(40)] + ["not-a-uuid"] + foreign
    ws = RecordingSocket()
    session = NotificationSession(ws, RoutingOff(), owner, "json")
    statements.clear()
    session.handle_client_message(json.dumps({"type": "subscribe", "jobs": mine + unknown, "after_seq": 0}))
    assert len(statements) == 2, statements  # the jobs, then their recorded events
    errors = [f for f in ws.sent if f["type"] == "error"]
    assert errors == [{"type": "error", "error": "job-not-found", "detail": errors[0]["detail"], "jobs": unknown}]
    assert [f["job"]["id"] for f in ws.sent if f["type"] == "snapshot"] == mine
    replayed = [(f["job_id"], f["seq"]) for f in ws.sent if f["type"] == "event"]
    assert replayed == [(job_id, seq) for job_id in mine for seq in (1, 2)]
    for frame in ws.sent:
        assert set(frame) == SOCKET_FRAME_KEYS[frame["type"]], frame


def test_past_the_per_socket_limit_the_extra_jobs_are_refused_in_one_frame(app, statements):
    owner = f"user:cap-{uuid.uuid4().hex[:8]}"
    ids = make_jobs(owner, MAX_JOBS_PER_SOCKET + 3, events=1)
    ws = RecordingSocket()
    session = NotificationSession(ws, RoutingOff(), owner, "json")
    session.handle_client_message(json.dumps({"type": "subscribe", "jobs": ids[:MAX_JOBS_PER_SOCKET - 2]}))
    assert [f["type"] for f in ws.sent] == ["snapshot"] * (MAX_JOBS_PER_SOCKET - 2)
    ws.sent.clear()
    statements.clear()
    session.handle_client_message(json.dumps({"type": "subscribe", "jobs": ids[MAX_JOBS_PER_SOCKET - 4:]}))
    assert len(statements) == 1
    refusals = [f for f in ws.sent if f["type"] == "error"]
    assert [(f["error"], sorted(f["jobs"])) for f in refusals] == [("too-many-jobs", sorted(ids[-3:]))]
    # Two already watched (snapshotted again, harmless), two new ones that fit.
    assert [f["job"]["id"] for f in ws.sent if f["type"] == "snapshot"] == ids[MAX_JOBS_PER_SOCKET - 4:MAX_JOBS_PER_SOCKET]
    assert len(session.tracked) == MAX_JOBS_PER_SOCKET


def test_a_message_naming_more_jobs_than_a_socket_may_watch_costs_no_query(app, statements):
    ws = RecordingSocket()
    session = NotificationSession(ws, RoutingOff(), "user:nobody", "json")
    statements.clear()
    session.handle_client_message(json.dumps({"type": "subscribe",
                                              "jobs": [str(uuid.uuid4()) for _ in range(MAX_JOBS_PER_SOCKET + 1)]}))
    assert statements == []
    assert [(f["type"], f["error"], f["jobs"]) for f in ws.sent] == [("error", "too-many-jobs", [])]
