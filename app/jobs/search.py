"""Text search over jobs (id, parameters, error): what to match, and reading the trigram index within a budget.

The trigram index finds rare text at once, but a text whose every trigram is common makes PostgreSQL recheck
many rows, and a common text is better checked row by row on a bounded walk of a list (app/jobs/listing.py).
So the index is asked for at most ``COUNT_CAP + 1`` matches within ``BUDGET_MS``: fewer matches, and the
answer is complete; as many, or out of time, and the caller walks instead.
"""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Row

from app.extensions import db
from app.jobs.models import SEARCH_DOCUMENT, Job

COUNT_CAP = 10_000  # totals past it read "more than 10,000": counting further would read every match
MIN_LENGTH = 3  # a trigram index cannot narrow down shorter text
BUDGET_MS = 150  # what one search may spend in the index before it falls back to a bounded walk
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout


def whole_job_id(text: str | None) -> uuid.UUID | None:
    """The job id ``text`` spells out in full (with or without dashes), else None."""
    candidate = (text or "").strip()
    if len(candidate) not in (32, 36):
        return None
    try:
        return uuid.UUID(candidate)
    except ValueError:
        return None


def search_clause(text: str) -> sa.ColumnElement[bool]:
    """Jobs whose id, parameters or error contain ``text``, case-insensitively (served by the trigram index)."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    clause = SEARCH_DOCUMENT.ilike(pattern, escape="\\")
    if db.engine.dialect.name != "postgresql":
        try:
            clause = clause | (Job.id == uuid.UUID(text))  # SQLite keeps a UUID as bare hex, without the dashes
        except ValueError:
            pass
    return clause


def hits(text: str) -> sa.Select:
    """At most COUNT_CAP + 1 jobs holding ``text``, in no order: the columns lists filter and sort on."""
    return (sa.select(Job.created_at, Job.id, Job.owner, Job.report, Job.state)
            .where(search_clause(text)).limit(COUNT_CAP + 1))


def within_budget(statement: sa.Select) -> list[Row] | None:
    """Run ``statement``, or None if PostgreSQL could not finish it within BUDGET_MS (SQLite: no budget)."""
    if db.engine.dialect.name != "postgresql":
        return list(db.session.execute(statement).all())
    try:
        with db.session.begin_nested():  # a cancelled statement spoils only this savepoint, and SET LOCAL with it
            db.session.execute(sa.text(f"SET LOCAL statement_timeout = {int(BUDGET_MS)}"))
            rows = list(db.session.execute(statement).all())
            db.session.execute(sa.text("SET LOCAL statement_timeout = DEFAULT"))
            return rows
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "pgcode", None) == QUERY_CANCELED:
            return None
        raise
