"""Job lists, newest first, paged by key (created_at, id): no page of any filter reads more than a bounded range.

Each equality set in ``SERVED`` has an index ending in (created_at, id) (app/jobs/models.py), so its pages are
index range reads. A combination no index serves (owner + report, say) walks the best of them for at most
``SCAN_LIMIT`` entries per request and checks the rest per row; if the page is not full by then, it says how
far it looked and links on from there. Search text goes through app/jobs/search.py. Totals are exact up to
``COUNT_CAP`` and labelled past it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.sql import visitors
from sqlalchemy.sql.util import ClauseAdapter

from app.extensions import db
from app.jobs import counters
from app.jobs.cursor import Cursor
from app.jobs.models import Job
from app.jobs.search import COUNT_CAP, hits, search_clause, within_budget
from app.jobs.states import JobState

SCAN_LIMIT = 5_000  # index entries a filter that no index fully serves walks per request (~5k row reads)
# The equality filters one index serves in (created_at, id) order, most specific first (app/jobs/models.py).
SERVED = (("owner", "state"), ("report", "state"), ("owner",), ("report",), ("state",), ())


@dataclass
class JobFilter:
    """What a list is narrowed to; ``errors`` lists what a caller could not parse (shown, not fatal)."""

    state: JobState | None = None
    report: str | None = None
    owner: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    q: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_args(self) -> dict[str, str]:
        """Query-string form (for links and the bulk confirmation)."""
        out = {"state": self.state.value if self.state else None, "report": self.report, "owner": self.owner,
               "from": self.created_from.isoformat() if self.created_from else None,
               "to": self.created_to.isoformat() if self.created_to else None, "q": self.q}
        return {k: v for k, v in out.items() if v}

    def equalities(self) -> dict[str, str]:
        """The equality filters that are set, by column name."""
        values = {"owner": self.owner, "report": self.report, "state": self.state.value if self.state else None}
        return {name: value for name, value in values.items() if value}

    def conditions(self, names: tuple[str, ...]) -> list[sa.ColumnElement[bool]]:
        """SQL for the equality filters ``names``."""
        wanted = self.equalities()
        return [getattr(Job, name) == wanted[name] for name in names]



@dataclass(frozen=True)
class Total:
    """How many jobs match: exact, or a lower bound where counting on would mean reading every match."""

    value: int
    exact: bool = True

    def __str__(self) -> str:
        if self.exact:
            return f"{self.value:,}"
        return f"more than {COUNT_CAP:,}" if self.value > COUNT_CAP else f"at least {self.value:,}"


@dataclass
class Page:
    """One page of jobs and the keys to go on from; ``scanned_to``: a bounded walk stopped there."""

    jobs: list[Job]
    older: Cursor | None = None
    newer: Cursor | None = None
    scanned_to: Cursor | None = None


@dataclass(frozen=True)
class Plan:
    """How a filter is read: an index range (``lead``), conditions checked per row on a bounded walk of it
    (``residual``), or first of all the trigram index for ``search`` text."""

    lead: list[sa.ColumnElement[bool]]
    residual: list[sa.ColumnElement[bool]] = field(default_factory=list)
    search: str | None = None
    common_text: bool = False  # the search text is in more than COUNT_CAP jobs (or the index took too long)


@dataclass(frozen=True)
class Outcome:
    """What one read found: the page's keys, how many rows matched and were looked at, where a walk stopped."""

    keys: list[Cursor]
    matched: int
    seen: int
    end: Cursor | None


def plan(f: JobFilter) -> Plan:
    """How to read ``f``: through the served equality set with most columns, the rest checked per row."""
    served = next(names for names in SERVED if set(names) <= set(f.equalities()))
    lead = f.conditions(served)
    if f.created_from:
        lead.append(Job.created_at >= f.created_from)
    if f.created_to:
        lead.append(Job.created_at <= f.created_to)
    residual = f.conditions(tuple(n for n in f.equalities() if n not in served))
    return Plan(lead, residual, search=f.q)


def read(f: JobFilter, *, before: Cursor | None = None, after: Cursor | None = None, offset: int = 0,
         per_page: int = 25) -> tuple[Page, Total]:
    """A page of jobs matching ``f`` (just older than ``before``, or newer than ``after``) and their total."""
    p = plan(f)
    if p.search:
        found = _from_index(p, before, after, offset, per_page)
        if isinstance(found, tuple):
            return found
        p = _walking(p, common=found)
    page, outcome = _page(p, before, after, offset, per_page)
    first = before is None and after is None and not offset
    return page, _total(f, p, outcome if first else None)


def bulk_targets(f: JobFilter, limit: int) -> tuple[Total, list[Any]]:
    """How many jobs match ``f`` and the ids of the oldest ``limit`` (bulk actions go oldest first)."""
    p = plan(f)
    if p.search:
        outcome = _search_outcome(p, None, True, 0, limit)
        if outcome is not None and outcome.seen <= COUNT_CAP:
            return Total(outcome.matched), [k.id for k in outcome.keys]
        p = _walking(p, common=outcome is not None)
    total = _total(f, p, None)
    return total, [k.id for k in _outcome(p, None, True, 0, limit).keys] if limit else []


def _walking(p: Plan, common: bool) -> Plan:
    """The text is common (or the index was slow, ``common`` False): check it per row on the bounded walk."""
    return Plan(p.lead, [*p.residual, search_clause(p.search or "")], common_text=common)


def _from_index(p: Plan, before: Cursor | None, after: Cursor | None, offset: int, per_page: int
                ) -> tuple[Page, Total] | bool:
    """The page and total from the trigram index; else whether that was because the text is common (True)
    or because the index took too long (False)."""
    newer = after is not None
    outcome = _search_outcome(p, after if newer else before, newer, offset, per_page + 1)
    if outcome is not None and newer and len(outcome.keys) <= per_page:
        outcome = _search_outcome(p, None, False, 0, per_page + 1)  # nothing newer past these: the newest page
        before = after = None
    if outcome is None or outcome.seen > COUNT_CAP:
        return outcome is not None
    return _assemble(outcome, before, after, offset, per_page), Total(outcome.matched)


def _search_outcome(p: Plan, cursor: Cursor | None, newer: bool, offset: int, limit: int) -> Outcome | None:
    """The trigram index's matches (COUNT_CAP + 1 at most: ``seen``) filtered, counted and paged in one
    statement; None when it took longer than its budget."""
    source = hits(p.search or "").cte("hits")
    rows = within_budget(_statement(source, [*p.lead, *p.residual], _keyset(source.c, cursor, newer), newer,
                                    offset, limit))
    return None if rows is None else _outcome_of(rows, walked=False)


def _page(p: Plan, before: Cursor | None, after: Cursor | None, offset: int, per_page: int
          ) -> tuple[Page, Outcome]:
    newer = after is not None
    outcome = _outcome(p, after if newer else before, newer, offset, per_page + 1)
    if newer and len(outcome.keys) <= per_page and outcome.end is None:
        return _page(p, None, None, 0, per_page)  # nothing newer past these: the newest page, full
    return _assemble(outcome, before, after, offset, per_page), outcome


def _outcome(p: Plan, cursor: Cursor | None, newer: bool, offset: int, limit: int) -> Outcome:
    """Keys of up to ``limit`` matches past ``cursor``: an index range read, or a walk of SCAN_LIMIT entries."""
    source = sa.select(Job.created_at, Job.id).where(*p.lead, *_keyset(Job, cursor, newer)) \
        .order_by(*_order(Job, newer))
    if not p.residual:
        rows = db.session.execute(source.offset(offset).limit(limit)).all()
        return Outcome([Cursor(*row) for row in rows], len(rows), len(rows), None)
    # Only the columns the checks need: a report check is answered by the owner indexes alone (INCLUDE).
    needed = {c.key: c for clause in p.residual for c in visitors.iterate(clause) if isinstance(c, sa.Column)}
    walk = source.add_columns(*[c for key, c in needed.items() if key not in ("created_at", "id")]) \
        .limit(SCAN_LIMIT).cte("walk")
    return _outcome_of(db.session.execute(_statement(walk, p.residual, [], newer, offset, limit)).all(), walked=True)


def _statement(source: sa.CTE, checks: list[sa.ColumnElement[bool]], keyset: list[sa.ColumnElement[bool]],
               newer: bool, offset: int, limit: int) -> sa.Select:
    """One row per key of the page (at least one row): rows seen in ``source``, how many pass ``checks``,
    the last row seen, and the page's keys. The database does the work: a few rows come back, not thousands.

    A walk's LIMIT inside its CTE keeps PostgreSQL from pushing the checks into the index scan: it stops at
    the bound whatever the checks find.
    """
    adapt = ClauseAdapter(source).traverse
    hit = sa.select(source.c.created_at, source.c.id).where(*[adapt(c) for c in checks]).cte("hit")
    page = sa.select(hit.c.created_at, hit.c.id).where(*[ClauseAdapter(hit).traverse(c) for c in keyset]) \
        .order_by(*_order(hit.c, newer)).offset(offset).limit(limit).subquery("page")
    last = sa.select(source.c.created_at).order_by(*_order(source.c, not newer)).limit(1)
    one = sa.select(sa.literal(1).label("one")).subquery("one")
    return (sa.select(sa.select(sa.func.count()).select_from(source).scalar_subquery().label("seen"),
                      sa.select(sa.func.count()).select_from(hit).scalar_subquery().label("matched"),
                      last.scalar_subquery().label("end_at"),
                      last.with_only_columns(source.c.id).scalar_subquery().label("end_id"),
                      page.c.created_at, page.c.id)
            .select_from(one.outerjoin(page, sa.true())).order_by(*_order(page.c, newer)))


def _outcome_of(rows: list[Row], walked: bool) -> Outcome:
    first = rows[0]
    keys = [Cursor(row.created_at, row.id) for row in rows if row.id is not None]
    end = Cursor(first.end_at, first.end_id) if walked and first.seen >= SCAN_LIMIT else None
    return Outcome(keys, first.matched, first.seen, end)


def _assemble(outcome: Outcome, before: Cursor | None, after: Cursor | None, offset: int, per_page: int) -> Page:
    """The page and its links from ``outcome`` (keys fetched one past the page, to know if more follow)."""
    keys = outcome.keys
    more = len(keys) > per_page
    keys = keys[:per_page]
    stopped = None if more else outcome.end  # a walk that ran out before the page filled: link on from there
    if after is not None:
        keys.reverse()
        return Page(_load(keys), older=keys[-1] if keys else after, newer=keys[0] if more else stopped,
                    scanned_to=stopped)
    page = Page(_load(keys), older=keys[-1] if more else stopped, scanned_to=stopped)
    if before is not None or offset:
        page.newer = keys[0] if keys else before
    return page


def _total(f: JobFilter, p: Plan, first: Outcome | None) -> Total:
    """How many match ``f``: the counters for a state/report filter, else counted up to a bound."""
    if not (f.owner or f.created_from or f.created_to or f.q):
        per_state = counters.jobs_per_state(f.report)
        return Total(per_state.get(f.state.value, 0) if f.state else sum(per_state.values()))
    if p.common_text and not (f.equalities() or f.created_from or f.created_to):
        return Total(COUNT_CAP + 1, exact=False)
    if not p.residual:
        query = sa.select(Job.id).where(*p.lead).limit(COUNT_CAP + 1).subquery()
        n = db.session.execute(sa.select(sa.func.count()).select_from(query)).scalar_one()
        return Total(n, exact=n <= COUNT_CAP)
    outcome = first or _outcome(p, None, False, 0, 1)
    return Total(outcome.matched, exact=outcome.end is None and outcome.seen < SCAN_LIMIT)


def _keyset(columns: Any, cursor: Cursor | None, newer: bool) -> list[sa.ColumnElement[bool]]:
    if cursor is None:
        return []
    key = sa.tuple_(columns.created_at, columns.id)
    return [key > (cursor.created_at, cursor.id)] if newer else [key < (cursor.created_at, cursor.id)]


def _order(columns: Any, newer: bool) -> list[Any]:
    return [columns.created_at.asc(), columns.id.asc()] if newer else [columns.created_at.desc(), columns.id.desc()]


def _load(keys: list[Cursor]) -> list[Job]:
    """The jobs of ``keys``, in the keys' order (primary-key lookups)."""
    if not keys:
        return []
    found = db.session.execute(sa.select(Job).where(Job.id.in_([k.id for k in keys]))).unique().scalars()
    jobs = {job.id: job for job in found}
    return [jobs[k.id] for k in keys if k.id in jobs]
