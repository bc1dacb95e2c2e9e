"""Endpoints an owner registers, and the deliveries a job's end queues for them (in that job's transaction)."""
from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import joinedload, selectinload

from app.extensions import db
from app.jobs.models import Job, utcnow
from app.jobs.states import JobState
from app.webhooks import mail
from app.webhooks.guard import Refused, parse, resolve
from app.webhooks.models import EVENTS, PENDING, WebhookDelivery, WebhookEndpoint

EVENT_OF = {JobState.SUCCEEDED: "job.succeeded", JobState.FAILED: "job.failed", JobState.CANCELLED: "job.cancelled"}
FIELDS = {"url", "events", "description"}


class EndpointInvalid(ValueError):
    """Fields of an endpoint that cannot be accepted: ``errors`` names each one."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class TooManyEndpoints(Exception):
    """The owner already has as many endpoints as LONGRUN_MAX_WEBHOOKS_PER_OWNER allows."""


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def checked_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The endpoint fields of ``body``, validated (the URL resolved and refused if it is not public)."""
    errors = []
    url = body.get("url")
    emailed = mail.is_mail(url)  # an e-mail alert: the same deliveries, sent by SMTP
    try:
        if emailed:
            url = mail.MAILTO + mail.address_of(url)
            mail.check_smtp(current_app.config["SMTP_URL"])
        else:
            resolve(parse(url), current_app.config["LONGRUN_WEBHOOK_ALLOW_PRIVATE"])
            url = url.strip()
    except Refused as exc:
        errors.append({"field": "url", "message": str(exc)})
    events = body.get("events", list(mail.EVENTS if emailed else EVENTS))
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        errors.append({"field": "events", "message": f"must be a non-empty list of: {', '.join(EVENTS)}"})
    elif unknown := [e for e in events if e not in EVENTS]:
        errors.append({"field": "events", "message": f"unknown event type {unknown[0]!r}; known: {', '.join(EVENTS)}"})
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 200):
        errors.append({"field": "description", "message": "must be text of at most 200 characters"})
    if errors:
        raise EndpointInvalid(errors)
    return {"url": url, "events": list(dict.fromkeys(events)), "description": description or None}


def create_endpoint(owner: str, body: dict[str, Any]) -> WebhookEndpoint:
    """Register an endpoint for ``owner`` with a new secret (the caller shows it once)."""
    fields = checked_fields(body)
    limit = current_app.config["LONGRUN_MAX_WEBHOOKS_PER_OWNER"]
    count = db.session.execute(sa.select(sa.func.count()).select_from(WebhookEndpoint)
                               .where(WebhookEndpoint.owner == owner)).scalar_one()
    if limit and count >= limit:
        raise TooManyEndpoints(limit)
    endpoint = WebhookEndpoint(owner=owner, secret=new_secret(), **fields)
    db.session.add(endpoint)
    db.session.commit()
    return endpoint


def list_endpoints(owner: str) -> list[WebhookEndpoint]:
    """The owner's endpoints, newest first."""
    return list(db.session.execute(sa.select(WebhookEndpoint).where(WebhookEndpoint.owner == owner)
                                   .order_by(WebhookEndpoint.created_at.desc())).scalars())


def find_endpoint(owner: str, endpoint_id: str) -> WebhookEndpoint | None:
    """The owner's endpoint with this id, or None (unknown, foreign and malformed ids alike)."""
    endpoint = _by_id(WebhookEndpoint, endpoint_id)
    return endpoint if endpoint is not None and endpoint.owner == owner else None


def _by_id(model: type[Any], raw_id: str) -> Any:
    """The row of ``model`` whose UUID key ``raw_id`` names, or None (also for a malformed id)."""
    try:
        key = uuid.UUID(raw_id)
    except ValueError:
        return None
    return db.session.get(model, key)


def delete_endpoint(endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint and the deliveries owed to it."""
    db.session.delete(endpoint)
    db.session.commit()


# Every final transition of every job runs this: built once.
_ENDPOINTS_OF = (sa.select(WebhookEndpoint.id, WebhookEndpoint.events)
                 .where(WebhookEndpoint.owner == sa.bindparam("owner")))


def queue_deliveries(job: Job) -> None:
    """Add, to the transaction that ends ``job``, one delivery per endpoint of its owner that wants this end.

    Written with the job's final state or not at all: a crash can neither lose the message nor send it for an
    end that rolled back. Sending happens later, in the clock (app/webhooks/sender.py), never in the job's way.
    """
    event = EVENT_OF.get(job.job_state)
    if event is None:
        return
    # No autoflush: the endpoints do not depend on the job's pending changes, and flushing them here would
    # write the job's row twice in this transaction (once now, once more for the event appended after).
    with db.session.no_autoflush:
        endpoints = db.session.execute(_ENDPOINTS_OF, {"owner": job.owner}).all()
    wanted = [row.id for row in endpoints if event in row.events]
    if not wanted:
        return
    now = utcnow()
    payload = json.dumps(payload_of(job, event, now), separators=(",", ":"))
    until = now + timedelta(hours=current_app.config["LONGRUN_WEBHOOK_RETRY_HOURS"])
    db.session.add_all(WebhookDelivery(endpoint_id=endpoint_id, job_id=job.id, event=event, payload=payload,
                                       status=PENDING, next_attempt_at=now, retry_until=until, created_at=now)
                       for endpoint_id in wanted)


def payload_of(job: Job, event: str, now: Any) -> dict[str, Any]:
    """The message (Standard Webhooks' type / timestamp / data): the job's outcome and links to it."""
    jid = str(job.id)
    base = current_app.config["LONGRUN_PUBLIC_URL"]
    paths = current_app.url_map.bind("localhost")  # paths only: from the routes, whatever process this is
    links = {"job": base + paths.build("api.get_job", {"job_id": jid}),
             "events": base + paths.build("api.job_events", {"job_id": jid})}
    if job.has_result:
        links["result"] = base + paths.build("api.job_result", {"job_id": jid})
    error = {"type": job.error_type, "message": job.error_message} if job.error_type else None
    return {"type": event, "timestamp": now.isoformat(),
            "data": {"id": jid, "report": job.report, "state": job.state, "attempts": job.attempts,
                     "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
                     "finished_at": _iso(job.finished_at), "error": error, "links": links}}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def deliveries_of(job: Job) -> list[WebhookDelivery]:
    """The job's deliveries, oldest first, with their endpoints and attempts."""
    return list(db.session.execute(
        sa.select(WebhookDelivery).where(WebhookDelivery.job_id == job.id)
        .options(selectinload(WebhookDelivery.tries), joinedload(WebhookDelivery.endpoint))
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)).scalars())


def find_delivery(job: Job, delivery_id: str) -> WebhookDelivery | None:
    """The job's delivery with this id, or None."""
    delivery = _by_id(WebhookDelivery, delivery_id)
    return delivery if delivery is not None and delivery.job_id == job.id else None


def redeliver(delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the same message again now (same ``webhook-id``: a receiver that has it can tell), retrying as new."""
    locked = db.session.execute(sa.select(WebhookDelivery).where(WebhookDelivery.id == delivery.id)
                                .with_for_update().execution_options(populate_existing=True)).scalar_one()
    now = utcnow()
    locked.status, locked.next_attempt_at, locked.finished_at = PENDING, now, None
    locked.retry_until = now + timedelta(hours=current_app.config["LONGRUN_WEBHOOK_RETRY_HOURS"])
    db.session.commit()
    return locked
