"""Webhook endpoints an owner registered, the messages owed to them, and every HTTP attempt made."""
from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.jobs.models import UTCDateTime, utcnow

# The events an endpoint may subscribe to: a job reaching each final state.
EVENTS = ("job.succeeded", "job.failed", "job.cancelled")
PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "gave_up"


class WebhookEndpoint(db.Model):
    """One URL of one owner, with the secret its messages are signed with (shown to the owner once)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(sa.String(128))
    url: Mapped[str] = mapped_column(sa.String(2048))
    # Kept to sign with (HMAC needs the key itself); never shown again after creation.
    secret: Mapped[str] = mapped_column(sa.String(64))
    events: Mapped[list] = mapped_column(sa.JSON, default=lambda: list(EVENTS))
    description: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (sa.Index("ix_webhook_endpoints_owner", "owner", "created_at"),)


class WebhookDelivery(db.Model):
    """One message owed to one endpoint about one job; its id is the ``webhook-id`` every retry repeats."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    # Removed with its job by retention (ON DELETE CASCADE), like the job's events and result.
    job_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(sa.String(32))
    # The exact bytes sent (and signed): a retry repeats them even if the job changed since.
    payload: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    # When the next attempt is due (a pending delivery); also the lease of one being sent now.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    retry_until: Mapped[datetime] = mapped_column(UTCDateTime)  # failures retry until then, then it gives up
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    endpoint: Mapped[WebhookEndpoint] = relationship()
    tries: Mapped[list[WebhookAttempt]] = relationship(order_by="WebhookAttempt.number",
                                                       cascade="all, delete-orphan", passive_deletes=True)

    __table_args__ = (
        # The sender's only question, "what is due?", reads this index from its start.
        sa.Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=sa.text("status = 'pending'"),
                 sqlite_where=sa.text("status = 'pending'")),
        sa.Index("ix_webhook_deliveries_job", "job_id", "created_at"),
        sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id"),
    )


class WebhookAttempt(db.Model):
    """One HTTP try of a delivery: when, what came back, how long it took."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)  # None: no HTTP answer (refused, timeout, …)
    latency_ms: Mapped[float | None] = mapped_column(sa.Float)
    # What went wrong, or the start of the answer's body: never more than EXCERPT characters.
    excerpt: Mapped[str | None] = mapped_column(sa.String(300))
