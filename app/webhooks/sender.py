"""The clock's webhook duty: claim due deliveries, POST them signed (in parallel, outside any transaction),
record each attempt and when to try again.

A claimed delivery's ``next_attempt_at`` moves past the attempt's timeout first (its lease): a clock that dies
mid-send leaves it due again a little later, never lost; two clocks never claim the same one (SKIP LOCKED).
"""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import sqlalchemy as sa
import urllib3
from flask import current_app
from standardwebhooks.webhooks import Webhook

from app.extensions import db
from app.jobs.models import utcnow
from app.webhooks import mail
from app.webhooks.guard import Refused, Target, parse, resolve
from app.webhooks.models import DELIVERED, GAVE_UP, PENDING, WebhookAttempt, WebhookDelivery, WebhookEndpoint

BATCH = 16  # deliveries one run claims; more are due again at once (the run says ``more``)
SENDERS = 8  # attempts in flight at once: a slow endpoint holds one thread, not the others
EXCERPT = 300  # characters of an answer (or an error) kept per attempt
MAX_DELAY = 3600.0  # the longest wait between two attempts
USER_AGENT = "Longrun-Webhooks/1"


@dataclass(frozen=True)
class Message:
    """One claimed delivery, everything an attempt needs without the database (an e-mail's ``mail`` composed)."""

    delivery_id: uuid.UUID
    url: str
    secret: str
    payload: str
    mail: EmailMessage | None = None


@dataclass(frozen=True)
class Answer:
    """What one attempt got: an HTTP status (None without one), its latency, a short excerpt."""

    status_code: int | None
    latency_ms: float | None
    excerpt: str

    @property
    def ok(self) -> bool:
        """A 2xx answer: delivered."""
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Sent:
    """What one run did; ``more``: it claimed a full batch, so the clock runs it again at once."""

    sent: int
    more: bool


def send_due() -> Sent:
    """Claim up to BATCH due deliveries, send them, record the answers."""
    cfg = current_app.config
    messages = claim(utcnow(), cfg["LONGRUN_WEBHOOK_TIMEOUT_SECONDS"])
    if not messages:
        return Sent(0, False)
    timeout, allow_private = cfg["LONGRUN_WEBHOOK_TIMEOUT_SECONDS"], cfg["LONGRUN_WEBHOOK_ALLOW_PRIVATE"]
    # Mails are composed here, in the app context their templates need; the threads only talk to the network.
    messages = [replace(m, mail=mail.compose(m.payload, cfg["SMTP_FROM"], mail.address_of(m.url)))
                if mail.is_mail(m.url) else m for m in messages]

    def attempt(message: Message) -> Answer:
        if message.mail is not None:
            return send_mail(message.mail, cfg["SMTP_URL"], timeout)
        return post(message, timeout, allow_private)

    with ThreadPoolExecutor(max_workers=min(SENDERS, len(messages)), thread_name_prefix="webhook") as pool:
        answers = list(pool.map(attempt, messages))
    for message, answer in zip(messages, answers, strict=True):
        record(message.delivery_id, answer, cfg["LONGRUN_WEBHOOK_RETRY_SECONDS"])
    return Sent(len(messages), len(messages) == BATCH)


def claim(now: datetime, timeout: float) -> list[Message]:
    """Due deliveries, each leased past one attempt's timeout (so a dead sender's are due again)."""
    rows = db.session.execute(
        sa.select(WebhookDelivery, WebhookEndpoint.url, WebhookEndpoint.secret)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at).limit(BATCH)
        .with_for_update(of=WebhookDelivery, skip_locked=True)).all()
    lease = now + timedelta(seconds=timeout + 30)
    for delivery, _, _ in rows:
        delivery.next_attempt_at = lease
    db.session.commit()
    return [Message(delivery.id, url, secret, delivery.payload) for delivery, url, secret in rows]


def signed_headers(message: Message, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` (v1 HMAC)."""
    return {"webhook-id": str(message.delivery_id), "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(message.secret).sign(str(message.delivery_id), at, message.payload)}


def post(message: Message, timeout: float, allow_private: bool) -> Answer:
    """One attempt: check where the URL points now, connect to that address, POST, never follow a redirect."""
    started = time.perf_counter()
    try:
        target = parse(message.url)
        address = resolve(target, allow_private)
    except Refused as exc:
        return Answer(None, None, f"refused: {exc}"[:EXCERPT])
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Host": target.host_header,
               **signed_headers(message, datetime.now(timezone.utc))}
    pool = _pool(target, address, timeout)
    try:
        response = pool.urlopen("POST", target.path, body=message.payload.encode(), headers=headers,
                                redirect=False, retries=False, preload_content=False, assert_same_host=False)
        try:
            body = response.read(EXCERPT * 4, decode_content=True)  # an excerpt only, whatever they send
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        return Answer(None, _ms(started), f"{type(exc).__name__}: {exc}"[:EXCERPT])
    finally:
        pool.close()
    excerpt = body.decode("utf-8", "replace")[:EXCERPT]
    if 300 <= response.status < 400:
        excerpt = f"redirect to {response.headers.get('Location', '?')} not followed"[:EXCERPT]
    return Answer(response.status, _ms(started), excerpt)


def send_mail(composed: EmailMessage, smtp_url: str, timeout: float) -> Answer:
    """One e-mail attempt: the SMTP server's reply code stands in for the HTTP status (250: delivered)."""
    started = time.perf_counter()
    code, words = mail.send(composed, smtp_url, timeout)
    return Answer(code, _ms(started), words[:EXCERPT])


def _pool(target: Target, address: str, timeout: float) -> urllib3.HTTPConnectionPool:
    """A connection pool to the checked ``address``; TLS still verifies the certificate of the name."""
    limits = urllib3.Timeout(total=timeout)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(address, target.port, timeout=limits, maxsize=1, retries=False,
                                           server_hostname=target.host, assert_hostname=target.host)
    return urllib3.HTTPConnectionPool(address, target.port, timeout=limits, maxsize=1, retries=False)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def record(delivery_id: uuid.UUID, answer: Answer, retry_seconds: float) -> None:
    """Log the attempt; delivered on 2xx, else due again after a doubling delay until its retry window ends."""
    delivery = db.session.execute(sa.select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                                  .with_for_update().execution_options(populate_existing=True)).scalar_one_or_none()
    if delivery is None:  # its job was purged or its endpoint deleted meanwhile
        db.session.rollback()
        return
    now = utcnow()
    delivery.attempts += 1
    db.session.add(WebhookAttempt(delivery_id=delivery.id, number=delivery.attempts, at=now,
                                  status_code=answer.status_code, latency_ms=answer.latency_ms,
                                  excerpt=answer.excerpt or None))
    if answer.ok:
        delivery.status, delivery.next_attempt_at, delivery.finished_at = DELIVERED, None, now
    else:
        due = now + timedelta(seconds=min(retry_seconds * 2 ** (delivery.attempts - 1), MAX_DELAY))
        if due > delivery.retry_until:
            delivery.status, delivery.next_attempt_at, delivery.finished_at = GAVE_UP, None, now
        else:
            delivery.next_attempt_at = due
    db.session.commit()
