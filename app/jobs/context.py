"""The context a report gets inside a worker: throttled progress, cancellation, heartbeat, result."""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.jobs.lifecycle import MAX_MESSAGE_CHARS, record_note
from app.jobs.models import Job, utcnow
from app.jobs.results import ResultWriter, StoredResult
from app.reports.context import JobCancelled, encode_checkpoint, percent, result_type

log = logging.getLogger(__name__)
report_log = logging.getLogger("longrun.report")
_UNSET = object()


def worker_ref() -> str:
    """``host:pid`` of this process, stored on the job to tell a dead worker from a busy one."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Watcher(threading.Thread):
    """Beats the job's heartbeat and polls for cancellation, on its own connection."""

    def __init__(self, engine: sa.Engine, job_id: uuid.UUID, task_id: str, poll: float, beat: float) -> None:
        super().__init__(name=f"watch-{job_id}", daemon=True)
        self.engine = engine
        self.job_id = job_id
        self.task_id = task_id
        self.poll = poll
        self.beat = beat
        self.cancelled = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        table = Job.__table__
        last_beat = time.monotonic()
        while not self.stopped.wait(self.poll):
            try:
                with self.engine.begin() as conn:
                    if time.monotonic() - last_beat >= self.beat:
                        conn.execute(
                            table.update()
                            .where(table.c.id == self.job_id, table.c.celery_task_id == self.task_id)
                            .values(heartbeat_at=utcnow())
                        )
                        last_beat = time.monotonic()
                    flag = conn.execute(
                        sa.select(table.c.cancel_requested).where(table.c.id == self.job_id)
                    ).scalar_one_or_none()
                if flag:
                    self.cancelled.set()
            except Exception as exc:
                log.warning("heartbeat for job %s failed: %s", self.job_id, exc)

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self.stopped.set()
        self.join(timeout=5)


@dataclass
class Pending:
    """What the next write of a running job carries: fields of its row and the event recorded with them."""

    fields: dict[str, Any]
    kind: str
    message: str


class JobContext:
    """``ReportContext`` backed by the job row; progress and checkpoint writes are throttled."""

    def __init__(self, job: Job, task_id: str, watcher: Watcher) -> None:
        self.job_id = str(job.id)
        self.attempt = job.attempts
        self._uuid = job.id
        self._task_id = task_id
        self._watcher = watcher
        cfg = current_app.config
        self._flush_every = cfg["LONGRUN_PROGRESS_FLUSH_SECONDS"]
        self._max_result = cfg["LONGRUN_MAX_RESULT_BYTES"]
        self._max_checkpoint = cfg["LONGRUN_MAX_CHECKPOINT_BYTES"]
        # The claim just wrote the job: the first sample waits a flush interval like every other one.
        self._last_flush = time.monotonic()
        self._pending: tuple[float, int, int, str | None] | None = None
        self._checkpoint: Any = _UNSET
        self._resume: Any = _UNSET
        self._connection: sa.Connection | None = None
        self._writer: ResultWriter | None = None
        self._chunks_left = False

    # -- progress and checkpoints ---------------------------------------------
    def progress(self, done: int, total: int, message: str | None = None) -> None:
        self.check_cancelled()
        self._pending = (percent(done, total), int(done), int(total), message)
        self._flush_if_due()

    def checkpoint(self, state: Any) -> None:
        """Keep ``state`` as where a later attempt resumes; written with the next progress sample."""
        self._checkpoint = encode_checkpoint(state, self._max_checkpoint)
        self._flush_if_due()

    @property
    def resume_from(self) -> Any:
        """The checkpoint the last attempt left (read once, when a report first asks), or None."""
        if self._resume is _UNSET:
            # Attempt 1 has none (a requeue by hand clears it): no read for reports that never resume.
            if self.attempt <= 1:
                self._resume = None
            else:
                with db.engine.connect() as conn:
                    self._resume = conn.execute(
                        sa.select(Job.checkpoint).where(Job.id == self._uuid)).scalar_one_or_none()
        return self._resume

    def _flush_if_due(self) -> None:
        if time.monotonic() - self._last_flush >= self._flush_every:
            self.flush()

    def take_pending(self) -> Pending | None:
        """The unwritten latest progress and checkpoint (and forget them), or None."""
        if self._pending is None and self._checkpoint is _UNSET:
            return None
        self._last_flush = time.monotonic()
        fields: dict[str, Any] = {}
        if self._checkpoint is not _UNSET:
            fields["checkpoint"], self._checkpoint = self._checkpoint, _UNSET
        if self._pending is None:
            return Pending(fields, "log", "Checkpoint saved")
        pct, done, total, message = self._pending
        self._pending = None
        text = (message or f"{pct:.0f}%")[:MAX_MESSAGE_CHARS]
        fields.update(progress=pct, progress_done=done, progress_total=total, progress_message=text)
        return Pending(fields, "progress", text)

    def flush(self) -> None:
        """Write the latest progress and checkpoint (if any is unwritten), with one event."""
        pending = self.take_pending()
        if pending is None:
            return
        record_note(self._uuid, pending.kind, pending.message, task_id=self._task_id,
                    heartbeat_at=utcnow(), **pending.fields)

    # -- cancellation ---------------------------------------------------------
    def is_cancelled(self) -> bool:
        return self._watcher.cancelled.is_set()

    def check_cancelled(self) -> None:
        if self._watcher.cancelled.is_set():
            raise JobCancelled()

    def sleep(self, seconds: float) -> None:
        if self._watcher.cancelled.wait(max(0.0, seconds)):
            raise JobCancelled()

    # -- output ---------------------------------------------------------------
    def write_result(self, filename: str, content: bytes | str, content_type: str) -> None:
        kind = result_type(filename, content_type, isinstance(content, str))
        with self._new_writer(filename, kind) as out:
            out.write(content)

    def open_result(self, filename: str, content_type: str) -> ResultWriter:
        # Text written to a stream is UTF-8: say so for text types.
        return self._new_writer(filename, result_type(filename, content_type, content_type.startswith("text/")))

    def _new_writer(self, filename: str, content_type: str) -> ResultWriter:
        if self._writer is not None:
            if self._writer.stored is None:
                self._writer.abandon()  # replaced before it was closed: it is not the result
            self._chunks_left |= self._writer.wrote_chunks
        self._writer = ResultWriter(self._uuid, filename, content_type, self._max_result)
        return self._writer

    @property
    def chunks_may_be_left(self) -> bool:
        """Whether chunk rows of an earlier result may exist: an earlier attempt, or an earlier stream of this one."""
        return self.attempt > 1 or self._chunks_left

    @property
    def result(self) -> StoredResult | None:
        """The result written (closed), or None."""
        return self._writer.stored if self._writer is not None else None

    def log(self, message: str) -> None:
        text = str(message)[:MAX_MESSAGE_CHARS]
        report_log.info("%s", text)
        record_note(self._uuid, "log", text, task_id=self._task_id)

    @property
    def connection(self) -> Any:
        if self._connection is None:
            self._connection = db.engine.connect()
        return self._connection

    def close(self) -> None:
        """Release the report's connection (and a result stream it opened but never closed: no result)."""
        if self._writer is not None and self._writer.stored is None:
            self._writer.abandon()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
