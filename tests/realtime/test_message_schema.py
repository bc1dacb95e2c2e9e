"""Every JSON frame /notifications sends has exactly the keys app/channels.py defines for its type,
even when an HTML socket of the same web process rendered the same events first."""
import json
import time

from app.channels import SOCKET_FRAME_KEYS
from tests.realtime.wsclient import Owner, is_final_event, read_until


def read_html_until_done(ws, timeout: float = 15) -> list[str]:
    """HTML frames until the job's completion notice."""
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        frames.append(ws.recv())
        if "Completed processing job" in frames[-1]:
            return frames
    raise AssertionError(f"no completion notice; got {frames[-3:]}")


def assert_exact_schema(frames: list[dict], job_keys: set[str]) -> None:
    for frame in frames:
        assert set(frame) == SOCKET_FRAME_KEYS[frame["type"]], sorted(set(frame) ^ SOCKET_FRAME_KEYS[frame["type"]])
        if frame["type"] == "snapshot":
            assert set(frame["job"]) == job_keys
        assert "<div" not in json.dumps(frame)  # no rendered HTML rides along


def test_every_json_frame_has_exactly_the_schema_keys(web):
    # One web process (the shared server runs one worker): both formats share its render cache.
    owner = Owner(web.url)
    job = owner.submit(duration_seconds=0.6, steps=3)
    html = owner.connect(f"job={job['id']}&format=html&after_seq=0")
    plain = owner.connect(f"job={job['id']}&after_seq=0")
    html_frames = read_html_until_done(html)
    live = read_until(plain, is_final_event(job["id"]))
    job_keys = set(owner.job(job["id"]))
    assert {f["type"] for f in live} == {"snapshot", "event"}
    assert any(not f["replay"] for f in live if f["type"] == "event")  # live events, not only replays
    assert html_frames[0].startswith("<div")
    # The same events replayed: first to a new HTML socket, then to a new JSON socket.
    html_replay = owner.connect(f"job={job['id']}&format=html&after_seq=0")
    read_html_until_done(html_replay)
    replay_socket = owner.connect(f"job={job['id']}&after_seq=0")
    last_seq = owner.job(job["id"])["last_seq"]
    replayed = read_until(replay_socket, lambda m: m["type"] == "event" and m["seq"] == last_seq)
    assert [(f["seq"], f["replay"]) for f in replayed[1:]] == [(seq, True) for seq in range(1, last_seq + 1)]
    replay_socket.send("not json")
    error = json.loads(replay_socket.recv())
    assert_exact_schema(live + replayed + [error], job_keys)
    assert error["type"] == "error" and error["jobs"] == []
    for ws in (html, plain, html_replay, replay_socket):
        ws.close()
