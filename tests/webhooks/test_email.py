"""E-mail alerts (issue 15): a ``mailto:`` endpoint gets a plain-text and HTML mail when a job succeeds or fails,
through a real SMTP server process (aiosmtpd) that the test reads the delivered message from."""
from __future__ import annotations

import mailbox
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SMTP_PORT
from tests.helpers import submit, wait_for, wait_for_state


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[mailbox.Maildir]:
    """aiosmtpd on TEST_ENV's SMTP port, storing what it receives in a Maildir."""
    box = tmp_path / "mail"
    proc = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{SMTP_PORT}",
                             "-c", "aiosmtpd.handlers.Mailbox", str(box)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", SMTP_PORT)) == 0

    wait_for(listening, timeout=10, what="the SMTP server")
    yield mailbox.Maildir(box, create=False)
    proc.terminate()
    proc.wait(10)


def parts(message: mailbox.MaildirMessage) -> dict[str, str]:
    """The mail's bodies by content type."""
    return {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk()
            if not p.is_multipart()}


def test_an_address_gets_a_mail_when_a_job_succeeds_or_fails(client, smtp_server):
    created = client.post("/webhooks", json={"url": "mailto:alice@example.org"})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["events"] == ["job.succeeded", "job.failed"]  # an address's default

    ok = submit(client, duration_seconds=0.1, steps=1)
    wait_for_state(client, ok["id"], "Succeeded")
    mails = wait_for(lambda: list(smtp_server), timeout=20, what="the first mail")
    assert len(mails) == 1
    mail = mails[0]
    assert mail["To"] == "alice@example.org" and mail["From"] == "longrun@tests.example"
    assert mail["Subject"] == f"demo succeeded (job {ok['id'][:8]})"
    bodies = parts(mail)
    assert set(bodies) == {"text/plain", "text/html"}
    assert ok["id"] in bodies["text/plain"] and "is ready" in bodies["text/plain"]
    assert f"/jobs/{ok['id']}/result" in bodies["text/plain"] and f'href="/jobs/{ok["id"]}' in bodies["text/html"]

    bad = submit(client, report="fault_drill", mode="raise")
    wait_for_state(client, bad["id"], "Failed", timeout=30)
    wait_for(lambda: len(list(smtp_server)) == 2, timeout=20, what="the second mail")
    failed = next(m for m in smtp_server if m["Subject"].startswith("fault_drill failed"))
    assert "Error:" in parts(failed)["text/plain"]

    deliveries = client.get(f"/jobs/{ok['id']}/deliveries").get_json()["items"]
    assert [(d["status"], [t["status_code"] for t in d["tries"]]) for d in deliveries] == [("delivered", [250])]


def test_a_bad_address_or_no_smtp_server_gets_a_422(client, app, monkeypatch):
    for url in ("mailto:", "mailto:not-an-address", "mailto:a@b.c,evil@x.org", "mailto:a@b.org\r\nBcc: x@y.org"):
        response = client.post("/webhooks", json={"url": url})
        assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "url", url
    monkeypatch.setitem(app.config, "SMTP_URL", "")
    off = client.post("/webhooks", json={"url": "mailto:alice@example.org"})
    assert off.status_code == 422 and "SMTP_URL" in off.get_json()["errors"][0]["message"]
