"""Hostile /notifications messages against a real gunicorn: one clear answer each, and the socket goes on
(or, past the size limit, closes with 1009)."""
import json
import time
import uuid

import pytest
import websocket

from app.channels import SOCKET_FRAME_KEYS
from app.realtime.session import MAX_JOBS_PER_SOCKET
from tests.realtime.wsclient import Owner, close_code, is_final_event, read_until

LIMIT = 64 * 1024  # LONGRUN_MAX_BODY_BYTES bounds socket messages too


@pytest.fixture
def owner(web):
    return Owner(web.url)


def frames_within(ws, seconds: float) -> list[dict]:
    """Every frame that arrives within ``seconds``."""
    frames = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ws.settimeout(left)
        try:
            frames.append(json.loads(ws.recv()))
        except websocket.WebSocketTimeoutException:
            break
    return frames


def assert_still_serves(owner: Owner, ws) -> None:
    """A valid subscribe on the same socket gets the job's whole story."""
    job = owner.submit(duration_seconds=0, steps=1)
    ws.send(json.dumps({"type": "subscribe", "jobs": [job["id"]]}))
    read_until(ws, is_final_event(job["id"]))


def test_deeply_nested_message_gets_an_error_frame_and_the_socket_keeps_working(owner):
    ws = owner.connect()
    for message in ["[" * 60_000, '{"type": "subscribe", "jobs": ' + "[" * 20_000]:
        ws.send(message)
        [reply] = frames_within(ws, 1.5)
        assert reply["type"] == "error" and reply["error"] == "malformed-message", reply
        assert reply["detail"].startswith("The message nests deeper than 32 levels.")
    assert_still_serves(owner, ws)
    ws.close()


@pytest.mark.parametrize("size", [LIMIT + 1, 50 * 1024 * 1024])
def test_a_message_over_the_size_limit_closes_the_socket_with_1009(owner, size):
    ws = owner.connect()
    started = time.monotonic()
    try:
        ws.send("x" * size)
    except (OSError, websocket.WebSocketConnectionClosedException):
        pass  # the server stopped reading once past the limit; its close frame is still to be read
    assert close_code(ws, timeout=10) == 1009
    assert time.monotonic() - started < 10
    ws.close()
    assert_still_serves(owner, owner.connect())  # the server process is fine


def test_many_ids_in_one_message_get_one_error_frame(owner):
    ws = owner.connect()
    too_many = [str(uuid.uuid4()) for _ in range(1_500)]  # still under the size limit
    assert len(json.dumps({"type": "subscribe", "jobs": too_many})) < LIMIT
    started = time.monotonic()
    ws.send(json.dumps({"type": "subscribe", "jobs": too_many}))
    frames = frames_within(ws, 1.5)
    assert [f["error"] for f in frames] == ["too-many-jobs"], frames
    assert time.monotonic() - started < 3
    assert frames[0]["jobs"] == []  # not echoed back
    assert_still_serves(owner, ws)
    # 20,000 ids (the report's message) are past the size limit long before they are past the id limit.
    ws.send(json.dumps({"type": "subscribe", "jobs": [str(uuid.uuid4()) for _ in range(20_000)]}))
    assert close_code(ws, timeout=10) == 1009
    ws.close()


def test_unknown_ids_come_back_in_one_error_frame_next_to_the_known_jobs(owner, web):
    mine = [owner.submit(duration_seconds=0, steps=1)["id"] for _ in range(2)]
    foreign = Owner(web.url).submit(duration_seconds=0, steps=1)["id"]
    unknown = [str(uuid.uuid4()) for _ in range(MAX_JOBS_PER_SOCKET - 4)] + ["not-a-uuid", foreign]
    ws = owner.connect()
    ws.send(json.dumps({"type": "subscribe", "jobs": [mine[0], *unknown, mine[1], mine[0]]}))
    frames = frames_within(ws, 2)
    errors = [f for f in frames if f["type"] == "error"]
    assert len(errors) == 1 and errors[0]["error"] == "job-not-found"
    assert errors[0]["jobs"] == unknown  # every one, in order, and the other owner's job among them
    assert set(errors[0]) == SOCKET_FRAME_KEYS["error"]
    assert [f["job"]["id"] for f in frames if f["type"] == "snapshot"] == mine  # each once
    ws.close()
