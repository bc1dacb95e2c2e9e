"""Worker capacity: each live worker announces its pool size in PostgreSQL; the dispatcher sums the fresh ones."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.jobs.models import UTCDateTime, utcnow

log = logging.getLogger(__name__)


class WorkerSlots(db.Model):
    """A live Celery worker and its pool size, refreshed by the worker itself (capacity = the sum of fresh rows)."""

    __tablename__ = "worker_slots"

    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    concurrency: Mapped[int] = mapped_column(sa.Integer)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# A worker refreshes its row this often; a row older than WORKER_FRESH_SECONDS no longer counts as capacity.
WORKER_BEAT_SECONDS = 5.0
WORKER_FRESH_SECONDS = 20.0


def beat_worker(name: str, concurrency: int) -> None:
    """Record (or refresh) a live worker and its pool size."""
    row = {"name": name, "concurrency": concurrency, "seen_at": utcnow()}
    table = WorkerSlots.__table__
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values(row)
    db.session.execute(stmt.on_conflict_do_update(index_elements=[table.c.name],
                                                  set_={"concurrency": concurrency, "seen_at": row["seen_at"]}))
    db.session.commit()


def forget_worker(name: str) -> None:
    """A worker that shuts down gives its slots back at once."""
    db.session.execute(sa.delete(WorkerSlots).where(WorkerSlots.name == name))
    db.session.commit()


# Built once (the hot path runs it per job); the freshness cut-off is a parameter, ``slots_params()``.
_SLOTS = (sa.select(sa.func.coalesce(sa.func.sum(WorkerSlots.concurrency), 0))
          .where(WorkerSlots.seen_at > sa.bindparam("fresh_after")).scalar_subquery())


def slots_expression() -> sa.ScalarSelect:
    """Worker slots of every live worker, on every machine (a subquery; execute it with ``slots_params()``)."""
    return _SLOTS


def slots_params() -> dict[str, datetime]:
    """The parameters of ``slots_expression``: rows older than ``WORKER_FRESH_SECONDS`` are not capacity."""
    return {"fresh_after": utcnow() - timedelta(seconds=WORKER_FRESH_SECONDS)}


def capacity() -> int:
    """Worker slots of every live worker, on every machine."""
    return int(db.session.execute(sa.select(_SLOTS), slots_params()).scalar_one())


class _Announcer(threading.Thread):
    """The worker main process's heartbeat of its slots (its pool processes may all be busy for hours)."""

    def __init__(self, app: Flask, name: str, concurrency: int) -> None:
        super().__init__(name="longrun-capacity", daemon=True)
        self.app, self.worker, self.concurrency = app, name, concurrency
        self.stopped = threading.Event()

    def run(self) -> None:
        from app.jobs.dispatch import dispatch_quietly  # here: dispatch reads capacity from this module

        first = True
        while True:
            with self.app.app_context():
                try:
                    beat_worker(self.worker, self.concurrency)
                    if first:
                        dispatch_quietly()  # new slots: hand out what was waiting for them
                        first = False
                except Exception as exc:
                    log.warning("could not announce worker slots: %s", exc)
                finally:
                    db.session.remove()
            if self.stopped.wait(WORKER_BEAT_SECONDS):
                return


_announcer: _Announcer | None = None


def start_announcing(app: Flask, name: str, concurrency: int) -> None:
    """Announce this worker's slots now and every ``WORKER_BEAT_SECONDS`` until it shuts down."""
    global _announcer
    _announcer = _Announcer(app, name, concurrency)
    _announcer.start()


def stop_announcing(app: Flask) -> None:
    """Stop announcing and take this worker's slots back at once (a warm shutdown)."""
    if _announcer is None:
        return
    _announcer.stopped.set()
    _announcer.join(5)
    with app.app_context():
        try:
            forget_worker(_announcer.worker)
        except Exception as exc:
            log.warning("could not withdraw worker slots: %s", exc)
        finally:
            db.session.remove()
