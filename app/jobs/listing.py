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

from app.extensions import db
from app.jobs import counters, scan
from app.jobs.cursor import Cursor
from app.jobs.models import Job
from app.jobs.scan import SCAN_LIMIT
from app.jobs.search import COUNT_CAP, search_clause, whole_job_id
from app.jobs.states import JobState

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
    (``residual``), or first of all the search indexes for ``search`` text."""

    lead: list[sa.ColumnElement[bool]]
    residual: list[sa.ColumnElement[bool]] = field(default_factory=list)
    search: str | None = None
    common_text: bool = False  # the search text is in more than COUNT_CAP jobs (or the index took too long)


def plan(f: JobFilter) -> Plan:
    """How to read ``f``: through the served equality set with most columns, the rest checked per row."""
    served = next(names for names in SERVED if set(names) <= set(f.equalities()))
    lead = f.conditions(served)
    if f.created_from:
        lead.append(Job.created_at >= f.created_from)
    if f.created_to:
        lead.append(Job.created_at <= f.created_to)
    residual = f.conditions(tuple(n for n in f.equalities() if n not in served))
    job_id = whole_job_id(f.q)
    if job_id is not None:
        # A whole job id names one job: its primary key answers at once, whatever the size of the history.
        return Plan([*lead, Job.id == job_id], residual)
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
        outcome = scan.search(p.search or "", [*p.lead, *p.residual], None, True, 0, limit)
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
    """The page and total from a search index; else whether that was because the text is common (True)
    or because the index took too long (False)."""
    newer = after is not None
    outcome = scan.search(p.search or "", [*p.lead, *p.residual], after if newer else before, newer, offset,
                          per_page + 1)
    if outcome is not None and newer and len(outcome.keys) <= per_page:
        # Nothing newer past these: the newest page.
        outcome = scan.search(p.search or "", [*p.lead, *p.residual], None, False, 0, per_page + 1)
        before = after = None
    if outcome is None or outcome.seen > COUNT_CAP:
        return outcome is not None
    return _assemble(outcome, before, after, offset, per_page), Total(outcome.matched)


def _outcome(p: Plan, cursor: Cursor | None, newer: bool, offset: int, limit: int) -> scan.Outcome:
    """Keys of up to ``limit`` matches past ``cursor``: an index range read, or a bounded walk."""
    if not p.residual:
        return scan.index_range(p.lead, cursor, newer, offset, limit)
    return scan.walk(p.lead, p.residual, cursor, newer, offset, limit)


def _page(p: Plan, before: Cursor | None, after: Cursor | None, offset: int, per_page: int
          ) -> tuple[Page, scan.Outcome]:
    newer = after is not None
    outcome = _outcome(p, after if newer else before, newer, offset, per_page + 1)
    if newer and len(outcome.keys) <= per_page and outcome.end is None:
        return _page(p, None, None, 0, per_page)  # nothing newer past these: the newest page, full
    return _assemble(outcome, before, after, offset, per_page), outcome


def _assemble(outcome: scan.Outcome, before: Cursor | None, after: Cursor | None, offset: int, per_page: int) -> Page:
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


def _total(f: JobFilter, p: Plan, first: scan.Outcome | None) -> Total:
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


def _load(keys: list[Cursor]) -> list[Job]:
    """The jobs of ``keys``, in the keys' order (primary-key lookups)."""
    if not keys:
        return []
    found = db.session.execute(sa.select(Job).where(Job.id.in_([k.id for k in keys]))).unique().scalars()
    jobs = {job.id: job for job in found}
    return [jobs[k.id] for k in keys if k.id in jobs]
