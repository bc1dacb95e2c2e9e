"""What a job-changing transaction writes besides the jobs' own rows (their events, the counters, the owners'
lines) is added up in memory and written at commit, in one statement (app/jobs/upsert.py)."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import db
from app.jobs.upsert import Write, write_all

Provider = Callable[[Session], list[Write]]
_providers: list[tuple[int, Provider]] = []


def writes_at_commit(rank: int) -> Callable[[Provider], Provider]:
    """Register ``provider``: at commit it hands over (and forgets) its writes. Lower ranks are written, and lock
    their rows, first: one order for every transaction, so no two wait on each other in a cycle."""
    def register(provider: Provider) -> Provider:
        _providers.append((rank, provider))
        _providers.sort(key=lambda entry: entry[0])
        return provider
    return register


@event.listens_for(db.session, "before_commit")
def _write_pending(session: Session) -> None:
    """The jobs' rows first (what the rest refers to, and the row locks every writer takes first), then the rest."""
    session.flush()
    write_all(session, [w for _, provider in _providers for w in provider(session)])
