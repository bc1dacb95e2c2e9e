"""Job, its event history and its result artifact: the source of truth for every job."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.jobs.states import JobState


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(sa.types.TypeDecorator):
    """A timestamp that always comes back timezone-aware in UTC (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Job(db.Model):
    """One run of a report for one owner, across all its attempts."""

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(sa.String(128))  # every index is listed in __table_args__
    report: Mapped[str] = mapped_column(sa.String(64))
    params: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    # active_history: the owners' line counts (app/jobs/slots.py) need the value a change replaces, even when
    # the row was expired by a commit before the change (otherwise the counts would drift silently).
    state: Mapped[str] = mapped_column(sa.String(16), default=JobState.ENQUEUED.value, active_history=True)
    api_version: Mapped[str] = mapped_column(sa.String(8), default="v2")
    # 0 (lowest) to 9 (highest): who goes first within an owner's turn (app/jobs/priority.py).
    priority: Mapped[int] = mapped_column(sa.SmallInteger, default=5, server_default="5")

    progress: Mapped[float] = mapped_column(sa.Float, default=0.0)
    progress_done: Mapped[int | None] = mapped_column(sa.BigInteger)
    progress_total: Mapped[int | None] = mapped_column(sa.BigInteger)
    progress_message: Mapped[str | None] = mapped_column(sa.Text)
    # A long report's cursor (``ctx.checkpoint``), written with its progress: a later attempt resumes from it.
    # Deferred: only a report that asks for it (``ctx.resume_from``) reads it, once per attempt.
    checkpoint: Mapped[Any | None] = mapped_column(sa.JSON(none_as_null=True), deferred=True)

    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(sa.Integer, default=3)
    cancel_requested: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # Per-job event counter: events are numbered 1, 2, 3 ... under the row lock.
    last_seq: Mapped[int] = mapped_column(sa.Integer, default=0)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    error_type: Mapped[str | None] = mapped_column(sa.String(128))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    error_traceback: Mapped[str | None] = mapped_column(sa.Text)

    idempotency_key: Mapped[str | None] = mapped_column(sa.String(255))
    request_fingerprint: Mapped[str | None] = mapped_column(sa.String(64))

    # Dispatch bookkeeping: a message whose task id is not this one is stale and dropped.
    celery_task_id: Mapped[str | None] = mapped_column(sa.String(64))
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, active_history=True)
    worker: Mapped[str | None] = mapped_column(sa.String(255))
    trace_id: Mapped[str | None] = mapped_column(sa.String(32))
    # The creating request's span (W3C traceparent): a later dispatch continues that trace.
    trace_parent: Mapped[str | None] = mapped_column(sa.String(64))
    # A schedule's fire (app/schedules/) or a job asked for later (``run_at``): when it was meant to run.
    # A schedule's deletion leaves its jobs as ordinary jobs (SET NULL).
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("schedules.id", ondelete="SET NULL"))
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Joined (the content column is deferred): every reader of a job asks whether it has a result, and a
    # lazy load would cost one more query per job read and per flush of a locked job.
    result: Mapped[JobResult | None] = relationship(
        back_populates="job", uselist=False, cascade="all, delete-orphan", lazy="joined"
    )

    # Lists are ordered by (created_at, id), newest first: each filter that lists jobs has an index ending in
    # those two columns, so any page is an index range read (app/jobs/listing.py names which filter uses which).
    __table_args__ = (
        sa.UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        sa.Index("ix_jobs_created_id", "created_at", "id"),
        sa.Index("ix_jobs_state_created_id", "state", "created_at", "id"),
        sa.Index("ix_jobs_report_created_id", "report", "created_at", "id"),
        sa.Index("ix_jobs_report_state_created_id", "report", "state", "created_at", "id"),
        # With the report alongside: owner + report is checked on the index alone (app/jobs/listing.py).
        sa.Index("ix_jobs_owner_created_id", "owner", "created_at", "id", postgresql_include=["report"]),
        sa.Index("ix_jobs_owner_state_created_id", "owner", "state", "created_at", "id", postgresql_include=["report"]),
        # The retention purge walks finished jobs of one state by age.
        sa.Index("ix_jobs_state_finished", "state", "finished_at"),
        # Exactly one job per schedule and slot, whoever fires it; also a schedule's runs, newest first.
        sa.Index("uq_jobs_schedule_slot", "schedule_id", "scheduled_for", unique=True,
                 postgresql_where=sa.text("schedule_id IS NOT NULL"), sqlite_where=sa.text("schedule_id IS NOT NULL")),
        # The clock's lookup of jobs asked for later that are due now (only those rows are in it).
        sa.Index("ix_jobs_scheduled_due", "scheduled_for", postgresql_where=sa.text("state = 'Scheduled'"),
                 sqlite_where=sa.text("state = 'Scheduled'")),
    )

    @property
    def job_state(self) -> JobState:
        """The state as an enum."""
        return JobState(self.state)

    @property
    def error_text(self) -> str | None:
        """The error as people read it ("Type: message"), or None: one definition for pages, events and sockets."""
        return f"{self.error_type}: {self.error_message}" if self.error_type else None

    @property
    def has_result(self) -> bool:
        """Whether a result can be downloaded: the job succeeded and left one."""
        return self.state == JobState.SUCCEEDED.value and self.result is not None


class JobEvent(db.Model):
    """One entry of a job's history: a state change, a progress sample or a log line."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.String(16))  # state | progress | log
    state: Mapped[str] = mapped_column(sa.String(16))
    progress: Mapped[float] = mapped_column(sa.Float, default=0.0)
    message: Mapped[str | None] = mapped_column(sa.Text)
    attempt: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (sa.UniqueConstraint("job_id", "seq", name="uq_job_events_job_id_seq"),)


class JobResult(db.Model):
    """The artifact a job produced, stored in the database so any web process can serve it."""

    __tablename__ = "job_results"

    job_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    filename: Mapped[str] = mapped_column(sa.String(255))
    content_type: Mapped[str] = mapped_column(sa.String(128))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    # The bytes are in job_result_chunks, ``chunk_size`` each (the last one shorter): byte N is in chunk
    # N // chunk_size, so a download resumes (HTTP Range) without reading what came before. None: whole in
    # ``content``: a result smaller than one chunk, or one written before migration 0012 (at most the old 50 MiB
    # limit; never copied, so the upgrade of a big history is instant).
    chunk_size: Mapped[int | None] = mapped_column(sa.Integer)
    content: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[Job] = relationship(back_populates="result")


class JobResultChunk(db.Model):
    """One piece of a job's result, written as the report streams it; removed with its job (retention)."""

    __tablename__ = "job_result_chunks"

    job_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


def _search_document(table: sa.Table) -> sa.ColumnElement[str]:
    # Built of casts, || and coalesce only: all immutable, so PostgreSQL can index it (concat() is only stable).
    space = " "
    return (sa.cast(table.c.id, sa.Text) + space + sa.cast(table.c.params, sa.Text) + space
            + sa.func.coalesce(table.c.error_type, "") + space + sa.func.coalesce(table.c.error_message, ""))


WORD_CHARS = "a-z0-9_-"  # what a word of the searched text is made of, after lower(): ids and dates stay whole
WORD_MAX = 64  # longer words are indexed by their first 64 characters (a lexeme has a 2 KB limit)
WORDS_FROM = 100_000  # characters of the document whose words are indexed (a tsvector has a 1 MB limit)


def _search_words(document: sa.ColumnElement[str]) -> sa.ColumnElement[Any]:
    # Every function here is immutable, so PostgreSQL can index the expression; array_to_tsvector takes the words
    # as they are (no parser, no stemming), so "2026-12-03" and a job id are one word each.
    text = sa.func.lower(sa.func.left(document, WORDS_FROM))
    capped = sa.func.regexp_replace(text, f"([{WORD_CHARS}]{{{WORD_MAX}}})[{WORD_CHARS}]+", "\\1", "g")
    words = sa.func.array_remove(sa.func.regexp_split_to_array(capped, f"[^{WORD_CHARS}]+"), "")
    return sa.func.array_to_tsvector(words, type_=TSVECTOR)


# What text search matches (id, parameters, error): one expression for the query and the indexes, which must be
# identical for PostgreSQL to use them. PostgreSQL: a GIN index of the document's words finds words and word
# beginnings (their postings are as long as the matches), a trigram GIN index any substring (its postings are as
# long as the rows sharing the text's trigrams); SQLite has neither and scans.
SEARCH_DOCUMENT = _search_document(Job.__table__)
SEARCH_WORDS = _search_words(SEARCH_DOCUMENT)
# Alembic cannot compare these expressions with PostgreSQL's rendering of them: tests/jobs/test_history_at_scale.py
# checks instead that the indexes exist and that search plans use them.
sa.Index(
    "ix_jobs_search_trgm", SEARCH_DOCUMENT.label("search_document"), postgresql_using="gin",
    postgresql_ops={"search_document": "gin_trgm_ops"},
    info={"dialects": ("postgresql",), "autogenerate": False},
).ddl_if(dialect="postgresql")
sa.Index(
    "ix_jobs_search_words", SEARCH_WORDS, postgresql_using="gin",
    info={"dialects": ("postgresql",), "autogenerate": False},
).ddl_if(dialect="postgresql")
