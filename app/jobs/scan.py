"""The statements behind job lists: an index range read, a bounded walk, or a search index's matches.

Each answers in one round trip with a few rows — the page's keys plus how many rows matched and were looked at
and where a walk stopped — so the database does the filtering and counting, not Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.sql import visitors
from sqlalchemy.sql.util import ClauseAdapter

from app.extensions import db
from app.jobs.cursor import Cursor
from app.jobs.models import Job
from app.jobs.search import hits, within_budget

SCAN_LIMIT = 5_000  # index entries a filter that no index fully serves walks per request (~5k row reads)


@dataclass(frozen=True)
class Outcome:
    """What one read found: the page's keys, how many rows matched and were looked at, where a walk stopped."""

    keys: list[Cursor]
    matched: int
    seen: int
    end: Cursor | None


def index_range(lead: list[sa.ColumnElement[bool]], cursor: Cursor | None, newer: bool, offset: int, limit: int
                ) -> Outcome:
    """Keys of up to ``limit`` rows past ``cursor`` in one index's range (the index serves every condition)."""
    rows = db.session.execute(_range(lead, cursor, newer).offset(offset).limit(limit)).all()
    return Outcome([Cursor(*row) for row in rows], len(rows), len(rows), None)


def walk(lead: list[sa.ColumnElement[bool]], checks: list[sa.ColumnElement[bool]], cursor: Cursor | None,
         newer: bool, offset: int, limit: int) -> Outcome:
    """The first SCAN_LIMIT entries of the ``lead`` range past ``cursor``, ``checks`` tested on each."""
    # Only the columns the checks need: a report check is answered by the owner indexes alone (INCLUDE).
    needed = {c.key: c for clause in checks for c in visitors.iterate(clause) if isinstance(c, sa.Column)}
    source = _range(lead, cursor, newer).add_columns(
        *[c for key, c in needed.items() if key not in ("created_at", "id")]).limit(SCAN_LIMIT).cte("walk")
    rows = db.session.execute(_statement(source, checks, [], newer, offset, limit, walked=True)).all()
    return _outcome_of(rows)


def search(text: str, checks: list[sa.ColumnElement[bool]], cursor: Cursor | None, newer: bool, offset: int,
           limit: int) -> Outcome | None:
    """The search indexes' matches of ``text`` (COUNT_CAP + 1 at most: ``seen``), ``checks`` tested on each,
    counted and paged: from the first index that finds any; None when an index took longer than its budget."""
    outcome = None
    for read in hits(text):
        source = read.cte("hits")
        rows = within_budget(_statement(source, checks, _keyset(source.c, cursor, newer), newer, offset, limit,
                                        walked=False))
        if rows is None:
            return None
        outcome = _outcome_of(rows)
        if outcome.seen:
            break
    return outcome


def _range(lead: list[sa.ColumnElement[bool]], cursor: Cursor | None, newer: bool) -> sa.Select:
    return sa.select(Job.created_at, Job.id).where(*lead, *_keyset(Job, cursor, newer)).order_by(*_order(Job, newer))


def _statement(source: sa.CTE, checks: list[sa.ColumnElement[bool]], keyset: list[sa.ColumnElement[bool]],
               newer: bool, offset: int, limit: int, walked: bool) -> sa.Select:
    """One row per key of the page (at least one row): rows seen in ``source``, how many pass ``checks``,
    the last row a walk saw (where the next one starts), and the page's keys. The database does the work: a few
    rows come back, not thousands.

    A walk's LIMIT inside its CTE keeps PostgreSQL from pushing the checks into the index scan: it stops at
    the bound whatever the checks find.
    """
    adapt = ClauseAdapter(source).traverse
    hit = sa.select(source.c.created_at, source.c.id).where(*[adapt(c) for c in checks]).cte("hit")
    page = sa.select(hit.c.created_at, hit.c.id).where(*[ClauseAdapter(hit).traverse(c) for c in keyset]) \
        .order_by(*_order(hit.c, newer)).offset(offset).limit(limit).subquery("page")
    last = sa.select(source.c.created_at).order_by(*_order(source.c, not newer)).limit(1)
    end = ([last.scalar_subquery(), last.with_only_columns(source.c.id).scalar_subquery()] if walked
           else [sa.null(), sa.null()])
    one = sa.select(sa.literal(1).label("one")).subquery("one")
    return (sa.select(sa.select(sa.func.count()).select_from(source).scalar_subquery().label("seen"),
                      sa.select(sa.func.count()).select_from(hit).scalar_subquery().label("matched"),
                      end[0].label("end_at"), end[1].label("end_id"), page.c.created_at, page.c.id)
            .select_from(one.outerjoin(page, sa.true())).order_by(*_order(page.c, newer)))


def _outcome_of(rows: list[Row]) -> Outcome:
    first = rows[0]
    keys = [Cursor(row.created_at, row.id) for row in rows if row.id is not None]
    end = Cursor(first.end_at, first.end_id) if first.end_id is not None and first.seen >= SCAN_LIMIT else None
    return Outcome(keys, first.matched, first.seen, end)


def _keyset(columns: Any, cursor: Cursor | None, newer: bool) -> list[sa.ColumnElement[bool]]:
    if cursor is None:
        return []
    key = sa.tuple_(columns.created_at, columns.id)
    return [key > (cursor.created_at, cursor.id)] if newer else [key < (cursor.created_at, cursor.id)]


def _order(columns: Any, newer: bool) -> list[Any]:
    return [columns.created_at.asc(), columns.id.asc()] if newer else [columns.created_at.desc(), columns.id.desc()]
