"""Completion webhooks (issue 15): registered per owner, posted signed when a job ends, retried, logged per job,
redelivered on request, refused on private addresses. A real HTTP receiver, the real worker and clock."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.webhooks import guard
from app.webhooks.sender import Message, post
from tests.helpers import submit, wait_for, wait_for_state


class Receiver:
    """An HTTP server on this machine that records every POST and answers the statuses it is told, then 200."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.calls.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                    "at": time.time()})
                status = outer.statuses.pop(0) if outer.statuses else 200
                if status in (301, 302, 307):
                    self.send_response(status)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.end_headers()
                    return
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"receiver says no" * 100)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def signature_ok(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks check, written out (not the library that signed): HMAC-SHA256 over id.timestamp.body."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split(" "))


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def register(client, url: str, **fields) -> dict:
    response = client.post("/webhooks", json={"url": url, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_finished_job_is_posted_signed_and_retried_until_delivered(app, client, receiver):
    receiver.statuses = [500, 500]
    endpoint = register(client, receiver.url + "/hooks/longrun?team=7", events=["job.succeeded"],
                        description="CI")
    secret = endpoint["secret"]
    assert secret.startswith("whsec_") and endpoint["events"] == ["job.succeeded"]
    listed = client.get("/webhooks").get_json()["items"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]  # shown once

    job = submit(client, duration_seconds=0.2, steps=2)
    finished = wait_for_state(client, job["id"], "Succeeded")
    wait_for(lambda: len(receiver.calls) >= 3, timeout=20, what="the third attempt")
    first, second, third = receiver.calls[:3]
    assert third["path"] == "/hooks/longrun?team=7"
    for call in (first, second, third):
        headers = lower(call["headers"])
        assert signature_ok(secret, headers, call["body"]), headers
        assert abs(int(headers["webhook-timestamp"]) - call["at"]) < 5
    # One message, retried: the same webhook-id and the same bytes every time.
    assert len({lower(c["headers"])["webhook-id"] for c in (first, second, third)}) == 1
    assert first["body"] == third["body"]
    assert second["at"] - first["at"] >= 0.25 and third["at"] - second["at"] >= 0.5  # backoff doubles (0.3 s, 0.6 s)
    message = json.loads(third["body"])
    assert message["type"] == "job.succeeded"
    data = message["data"]
    assert data["id"] == job["id"] and data["state"] == "Succeeded" and data["report"] == "demo"
    assert data["finished_at"] == finished["finished_at"]
    assert data["links"]["job"].endswith(f"/jobs/{job['id']}") and data["links"]["result"].endswith("/result")

    deliveries = wait_for(lambda: [d for d in client.get(f"/jobs/{job['id']}/deliveries").get_json()["items"]
                                   if d["status"] == "delivered"], what="the delivery to be recorded")
    assert len(deliveries) == 1
    tries = deliveries[0]["tries"]
    assert [t["status_code"] for t in tries] == [500, 500, 200]
    assert all(t["latency_ms"] is not None and t["latency_ms"] >= 0 for t in tries)
    assert len(tries[0]["excerpt"]) <= 300  # the body was 1,600 bytes: an excerpt only
    assert len(receiver.calls) == 3

    # Redeliver: the same message once more.
    again = client.post(deliveries[0]["links"]["redeliver"], json={})
    assert again.status_code == 202
    wait_for(lambda: len(receiver.calls) == 4, what="the redelivery")
    assert lower(receiver.calls[3]["headers"])["webhook-id"] == lower(first["headers"])["webhook-id"]
    page = client.get(f"/jobs/{job['id']}/deliveries", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "delivered" in page and "Redeliver" in page
    operator = client.get(f"/dashboard/jobs/{job['id']}/deliveries").get_data(as_text=True)
    assert "/hooks/longrun" in operator and "Redeliver" in operator

    # Deliveries and their attempts go with their job (an operator's delete, like retention's purge).
    assert client.post(f"/dashboard/jobs/{job['id']}/delete", json={}).status_code in (200, 303)
    with app.app_context():
        left = db.session.execute(sa.text("SELECT count(*) FROM webhook_deliveries d LEFT JOIN webhook_attempts a "
                                          "ON a.delivery_id = d.id WHERE d.job_id = :j"), {"j": job["id"]}).scalar()
        orphans = db.session.execute(sa.text("SELECT count(*) FROM webhook_attempts a WHERE NOT EXISTS "
                                             "(SELECT 1 FROM webhook_deliveries d WHERE d.id = a.delivery_id)")).scalar()
        db.session.rollback()
    assert left == 0 and orphans == 0


def test_only_the_owners_endpoints_that_want_the_event_hear_of_it(client, other_client, receiver):
    succeeded_only = register(client, receiver.url + "/ok", events=["job.succeeded"])
    failed_only = register(client, receiver.url + "/failed", events=["job.failed"])
    register(other_client, receiver.url + "/someone-else")
    job = submit(client, report="fault_drill", mode="raise")
    wait_for_state(client, job["id"], "Failed", timeout=30)
    wait_for(lambda: receiver.calls, what="a delivery")
    time.sleep(1.0)  # time for a wrong delivery to show up too
    assert [c["path"] for c in receiver.calls] == ["/failed"]
    assert json.loads(receiver.calls[0]["body"])["data"]["error"]["type"]
    assert signature_ok(failed_only["secret"], lower(receiver.calls[0]["headers"]), receiver.calls[0]["body"])
    assert client.delete(f"/webhooks/{succeeded_only['id']}").status_code == 204
    assert client.delete(f"/webhooks/{succeeded_only['id']}").status_code == 404
    assert other_client.get(f"/jobs/{job['id']}/deliveries").status_code == 404  # someone else's job


def test_bad_endpoints_get_a_422_naming_the_field(client, app, monkeypatch):
    cases = [({"url": "ftp://example.com/x"}, "url"), ({"url": "not a url"}, "url"), ({}, "url"),
             ({"url": "http://user:pw@example.com/"}, "url"), ({"url": "http://example.com:99999/"}, "url"),
             ({"url": "https://93.184.215.14/", "events": ["job.exploded"]}, "events"),
             ({"url": "https://93.184.215.14/", "events": []}, "events"),
             ({"url": "https://no-such-host.invalid/"}, "url")]
    monkeypatch.setitem(app.config, "LONGRUN_WEBHOOK_ALLOW_PRIVATE", False)
    cases += [({"url": f"http://{host}/hook"}, "url")
              for host in ("127.0.0.1", "localhost", "10.0.0.8", "192.168.1.1", "169.254.169.254", "[::1]",
                           "[::ffff:127.0.0.1]", "0.0.0.0")]
    for body, field in cases:
        response = client.post("/webhooks", json=body)
        problem = response.get_json()
        assert response.status_code == 422 and response.mimetype == "application/problem+json", (body, problem)
        assert [e["field"] for e in problem["errors"]] == [field], (body, problem)
    refused = client.post("/webhooks", json={"url": "http://localhost/hook"}).get_json()
    assert "LONGRUN_WEBHOOK_ALLOW_PRIVATE" in refused["errors"][0]["message"]
    assert client.get("/webhooks").get_json()["items"] == []


def test_each_attempt_checks_the_address_again_and_never_follows_a_redirect(receiver):
    """Registered while allowed (or rebound by DNS since): refused at send time, nothing reaches the receiver."""
    message = Message(delivery_id=uuid.uuid4(), url=receiver.url + "/x", secret="whsec_" + "A" * 44,
                      payload="{}")
    refused = post(message, timeout=5, allow_private=False)
    assert refused.status_code is None and "refused" in refused.excerpt and receiver.calls == []
    receiver.statuses = [302]
    redirected = post(message, timeout=5, allow_private=True)
    assert redirected.status_code == 302 and not redirected.ok and "not followed" in redirected.excerpt
    assert len(receiver.calls) == 1  # the redirect target (a metadata address) was never asked
    assert not guard.public("100.64.0.1") and guard.public("93.184.215.14")


def test_the_page_registers_an_endpoint_and_shows_its_secret_once(client, receiver):
    page = client.get("/webhooks", headers={"Accept": "text/html"}).get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    created = client.post("/webhooks/form", data={"url": receiver.url + "/from-page", "events": ["job.failed"],
                                                  "csrf_token": token}, headers={"HX-Request": "true"})
    html = created.get_data(as_text=True)
    assert created.status_code == 201 and "whsec_" in html and "/from-page" in html
    again = client.get("/webhooks", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "/from-page" in again and "whsec_" not in again
    bad = client.post("/webhooks/form", data={"url": "gopher://x", "csrf_token": token},
                      headers={"HX-Request": "true"})
    assert bad.status_code == 422 and "must start with http:// or https://" in bad.get_data(as_text=True)
