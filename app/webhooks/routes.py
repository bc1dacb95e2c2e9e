"""``/webhooks`` (an owner's endpoints) and ``/jobs/<id>/deliveries``: JSON for API clients, pages and htmx
fragments for browsers."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, make_response, render_template, request, url_for

from app.api.body import read_json_object
from app.api.jobs import owned_job_or_404
from app.errors import ApiError
from app.jobs.models import Job
from app.owners.identity import current_owner
from app.web.rendering import is_htmx, render_page_or_fragment, vary, wants_page
from app.webhooks.models import EVENTS, WebhookDelivery, WebhookEndpoint
from app.webhooks.service import (
    FIELDS,
    EndpointInvalid,
    TooManyEndpoints,
    create_endpoint,
    delete_endpoint,
    deliveries_of,
    find_delivery,
    find_endpoint,
    list_endpoints,
    redeliver,
)

bp = Blueprint("webhooks", __name__)


def endpoint_json(endpoint: WebhookEndpoint, *, secret: bool = False) -> dict[str, Any]:
    """An endpoint as the API shows it; its secret only in the answer that created it."""
    body = {"id": str(endpoint.id), "url": endpoint.url, "events": endpoint.events,
            "description": endpoint.description, "created_at": endpoint.created_at.isoformat(),
            "links": {"self": url_for("webhooks.delete", endpoint_id=str(endpoint.id))}}
    if secret:
        body["secret"] = endpoint.secret
    return body


def delivery_json(job: Job, delivery: WebhookDelivery) -> dict[str, Any]:
    """A delivery with every attempt made."""
    iso = lambda value: value.isoformat() if value else None  # noqa: E731
    return {"id": str(delivery.id), "endpoint": {"id": str(delivery.endpoint_id), "url": delivery.endpoint.url},
            "event": delivery.event, "status": delivery.status, "attempts": delivery.attempts,
            "next_attempt_at": iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
            "created_at": iso(delivery.created_at), "finished_at": iso(delivery.finished_at),
            "tries": [{"number": t.number, "at": iso(t.at), "status_code": t.status_code, "latency_ms": t.latency_ms,
                       "excerpt": t.excerpt} for t in delivery.tries],
            "links": {"redeliver": url_for("webhooks.redeliver_delivery", job_id=str(job.id),
                                           delivery_id=str(delivery.id))}}


def _invalid(exc: EndpointInvalid) -> ApiError:
    return ApiError(422, "Invalid Webhook", f"Some fields are not valid: {exc}."[:600], slug="invalid-webhook",
                    errors=exc.errors)


def _too_many(exc: TooManyEndpoints) -> ApiError:
    return ApiError(422, "Too Many Webhooks", f"You have {exc.args[0]} endpoints, the most allowed; delete one first.",
                    slug="too-many-webhooks", errors=[{"field": "url", "message": "too many endpoints"}])


def _endpoint_or_404(endpoint_id: str) -> WebhookEndpoint:
    endpoint = find_endpoint(current_owner(), endpoint_id)
    if endpoint is None:
        raise ApiError(404, "Webhook Not Found", "There is no webhook endpoint with this id among yours.",
                       slug="webhook-not-found")
    return endpoint


@bp.get("/webhooks")
def list_webhooks() -> Response:
    """The caller's webhook endpoints (no secrets)."""
    endpoints = list_endpoints(current_owner())
    if wants_page():
        return render_page_or_fragment("webhooks/list.html", "webhooks/_endpoints.html", endpoints=endpoints,
                                       events=EVENTS, values={}, errors={}, created=None)
    return vary(jsonify({"items": [endpoint_json(e) for e in endpoints]}))


@bp.post("/webhooks")
def create() -> tuple[Response, int]:
    """Register an endpoint: 201 with its secret, shown this once."""
    try:
        endpoint = create_endpoint(current_owner(), read_json_object(FIELDS))
    except EndpointInvalid as exc:
        raise _invalid(exc) from None
    except TooManyEndpoints as exc:
        raise _too_many(exc) from None
    response = jsonify(endpoint_json(endpoint, secret=True))
    response.headers["Location"] = url_for("webhooks.delete", endpoint_id=str(endpoint.id))
    return response, 201


@bp.post("/webhooks/form")
def create_from_form() -> tuple[Response, int]:
    """The page's form: the list with the new secret shown once, or the form again naming what is wrong."""
    values = {"url": request.form.get("url", ""), "description": request.form.get("description", ""),
              "events": request.form.getlist("events") or list(EVENTS)}
    try:
        created = create_endpoint(current_owner(), {**values, "description": values["description"] or None})
    except EndpointInvalid as exc:
        errors = {e["field"]: e["message"] for e in exc.errors}
        return _page(values=values, errors=errors), 422
    except TooManyEndpoints as exc:
        return _page(values=values, errors={"url": _too_many(exc).detail}), 422
    return _page(created=created), 201


def _page(values: dict | None = None, errors: dict | None = None, created: WebhookEndpoint | None = None) -> Response:
    endpoints = list_endpoints(current_owner())
    return render_page_or_fragment("webhooks/list.html", "webhooks/_section.html", endpoints=endpoints,
                                   events=EVENTS, values=values or {}, errors=errors or {}, created=created)


@bp.delete("/webhooks/<endpoint_id>")
def delete(endpoint_id: str) -> Response:
    """Remove the endpoint; messages still owed to it are dropped."""
    delete_endpoint(_endpoint_or_404(endpoint_id))
    return make_response("", 200 if is_htmx() else 204)


@bp.get("/jobs/<job_id>/deliveries")
def job_deliveries(job_id: str) -> Response:
    """The job's webhook deliveries, each with its attempts (time, status code, latency)."""
    job = owned_job_or_404(job_id)
    deliveries = deliveries_of(job)
    if wants_page():
        return vary(make_response(_deliveries_fragment(job, deliveries)))
    return vary(jsonify({"items": [delivery_json(job, d) for d in deliveries]}))


def redeliver_or_404(job: Job, delivery_id: str) -> WebhookDelivery:
    """Make the job's delivery due again now; a 404 if the job has none with this id (owners and operators)."""
    delivery = find_delivery(job, delivery_id)
    if delivery is None:
        raise ApiError(404, "Delivery Not Found", "This job has no webhook delivery with this id.",
                       slug="delivery-not-found")
    return redeliver(delivery)


def _deliveries_fragment(job: Job, deliveries: list[WebhookDelivery]) -> str:
    return render_template("webhooks/_deliveries.html", job=job, deliveries=deliveries,
                           source=url_for("webhooks.job_deliveries", job_id=str(job.id)),
                           redeliver="webhooks.redeliver_delivery")


@bp.post("/jobs/<job_id>/deliveries/<delivery_id>/redeliver")
def redeliver_delivery(job_id: str, delivery_id: str) -> tuple[Response, int]:
    """Send the delivery again now: 202 (the clock sends it within a tick)."""
    job = owned_job_or_404(job_id)
    delivery = redeliver_or_404(job, delivery_id)
    if is_htmx():
        return make_response(_deliveries_fragment(job, deliveries_of(job))), 202
    return jsonify(delivery_json(job, delivery)), 202
