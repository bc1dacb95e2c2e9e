"""A small WebSocket client for tests: an owner's HTTP session plus its sockets."""
from __future__ import annotations

import json
import time

import requests
import websocket


class Owner:
    """One browser-like owner: a cookie jar shared by HTTP calls and sockets."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.http = requests.Session()
        self.http.get(base_url + "/jobs", timeout=5)  # obtain the identity cookie

    def submit(self, report: str = "demo", version: str = "v3", **params) -> dict:
        response = self.http.post(f"{self.base}/reports/{version}", json={"report": report, "params": params}, timeout=10)
        assert response.status_code == 202, response.text
        return response.json()

    def job(self, job_id: str) -> dict:
        return self.http.get(f"{self.base}/jobs/{job_id}", timeout=5).json()

    def connect(self, query: str = "", base: str | None = None, **kwargs) -> websocket.WebSocket:
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        url = (base or self.base).replace("http://", "ws://") + "/notifications" + (f"?{query}" if query else "")
        ws = websocket.create_connection(url, cookie=cookie, timeout=10, **kwargs)
        return ws


def read_until(ws, predicate, timeout: float = 20) -> list[dict]:
    """Read JSON messages until ``predicate(message)`` holds; return all messages read."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            message = json.loads(ws.recv())
        except websocket.WebSocketTimeoutException:
            break
        seen.append(message)
        if predicate(message):
            return seen
    raise AssertionError(f"condition not met within {timeout}s; got {seen[-5:]}")


def is_final_event(job_id: str):
    """Predicate: the final event (or a final snapshot) of ``job_id``."""
    def check(m: dict) -> bool:
        if m.get("type") == "event":
            return m["job_id"] == job_id and m["state"] in {"Succeeded", "Failed", "Cancelled"} and m["kind"] == "state"
        if m.get("type") == "snapshot":
            return m["job"]["id"] == job_id and m["job"]["final"]
        return False
    return check


def live_events(messages: list[dict], job_id: str) -> list[dict]:
    """The event messages of one job."""
    return [m for m in messages if m.get("type") == "event" and m["job_id"] == job_id]


def close_code(ws, timeout: float = 20) -> int | None:
    """Read until the server's close frame; its status code (``None`` if none came within ``timeout``)."""
    import struct

    import websocket as ws_lib

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except ws_lib.WebSocketTimeoutException:
            return None
        if opcode == ws_lib.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
    return None
