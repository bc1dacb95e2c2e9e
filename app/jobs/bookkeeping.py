"""What a job-changing transaction writes besides the jobs' own rows (their events, the counters, the owners'
lines) is added up in memory and written at commit, in one statement (app/jobs/upsert.py)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from app.extensions import db
from app.jobs.upsert import Write, write_all

Provider = Callable[[Session], list[Write]]
T = TypeVar("T")
_providers: list[tuple[int, Provider]] = []
_stores: set[str] = set()  # the ``session.info`` keys the providers keep their pending changes under


def writes_at_commit(rank: int, stores: tuple[str, ...]) -> Callable[[Provider], Provider]:
    """Register ``provider``: at commit it hands over (and forgets) its writes, kept until then under the
    ``session.info`` keys ``stores`` (forgotten when the transaction ends without a commit). Lower ranks are written,
    and lock their rows, first: one order for every transaction, so no two wait on each other in a cycle."""
    def register(provider: Provider) -> Provider:
        _stores.update(stores)
        _providers.append((rank, provider))
        _providers.sort(key=lambda entry: entry[0])
        return provider
    return register


@event.listens_for(db.session, "before_commit")
def _write_pending(session: Session) -> None:
    """The jobs' rows first (what the rest refers to, and the row locks every writer takes first), then the rest."""
    session.flush()
    write_all(session, [w for _, provider in _providers for w in provider(session)])


def pending(key: str, empty: Callable[[], T]) -> T:
    """This transaction's store ``key`` (``empty()`` at first), beginning the transaction if none is open: a
    rollback, even one before any SQL, then forgets it."""
    session = db.session()
    if not session.in_transaction():
        session.begin()
    store: Any = session.info.get(key)
    if store is None:
        store = session.info[key] = empty()
    return store


@event.listens_for(db.session, "after_transaction_end")
def _forget_pending(session: Session, transaction: SessionTransaction) -> None:
    """A transaction that ended without its commit made none of its changes: forget what they would have added."""
    if transaction.parent is None:
        for key in _stores:
            session.info.pop(key, None)
