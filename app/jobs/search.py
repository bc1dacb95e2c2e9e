"""Text search over jobs (id, parameters, error): what to match, and reading the search indexes within a budget.

On PostgreSQL the words index answers first: the text's words, the last one as a word beginning, then the text
itself checked on those rows. Its cost follows the number of matches, not the history. Text that starts inside a
word (the middle of an id) matches no word, so the trigram index is asked next: it finds any substring, but a text
whose trigrams are common makes PostgreSQL recheck many rows. Each index is asked for at most ``COUNT_CAP + 1``
matches within ``BUDGET_MS``: fewer matches, and the answer is complete; as many, or out of time, and the caller
checks the text row by row on a bounded walk of a list instead (app/jobs/listing.py).
"""
from __future__ import annotations

import re
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.engine import Row

from app.extensions import db
from app.jobs.models import SEARCH_DOCUMENT, SEARCH_WORDS, WORD_CHARS, WORD_MAX, Job

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


WORD = re.compile(f"[{WORD_CHARS}]+")


def words_query(text: str) -> str | None:
    """The tsquery for the words of ``text``, the last one as a word beginning (it may be cut short); None
    when the text has no word."""
    words = list(dict.fromkeys(word[:WORD_MAX] for word in WORD.findall(text.lower())))
    if not words:
        return None
    # Words hold only WORD_CHARS, so quoting them needs no escapes; quoted, tsquery takes them as they are.
    return " & ".join([*(f"'{word}'" for word in words[:-1]), f"'{words[-1]}':*"])


def search_clause(text: str, document: sa.ColumnElement[str] = SEARCH_DOCUMENT) -> sa.ColumnElement[bool]:
    """Jobs whose id, parameters or error contain ``text``, case-insensitively (served by the trigram index)."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    clause = document.ilike(pattern, escape="\\")
    if db.engine.dialect.name != "postgresql":
        try:
            clause = clause | (Job.id == uuid.UUID(text))  # SQLite keeps a UUID as bare hex, without the dashes
        except ValueError:
            pass
    return clause


def hits(text: str) -> list[sa.Select]:
    """The reads that find jobs holding ``text``, to be tried in turn while none finds any: each at most
    COUNT_CAP + 1 jobs, in no order, with the columns lists filter and sort on."""
    columns = sa.select(Job.created_at, Job.id, Job.owner, Job.report, Job.state)
    reads = []
    query = words_query(text) if db.engine.dialect.name == "postgresql" else None
    if query is not None:
        # The text is checked on `document || ''`, which no index holds: otherwise PostgreSQL may AND the trigram
        # index in, whose long postings are what this read avoids.
        reads.append(columns.where(SEARCH_WORDS.op("@@")(sa.cast(query, TSQUERY)),
                                   search_clause(text, SEARCH_DOCUMENT + "")).limit(COUNT_CAP + 1))
    reads.append(columns.where(search_clause(text)).limit(COUNT_CAP + 1))
    return reads


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
