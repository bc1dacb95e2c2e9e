"""One notification socket: snapshot from PostgreSQL, recorded gap, then live events — nothing lost."""
from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from flask import render_template
from simple_websocket import ConnectionClosed
from wsproto.utilities import LocalProtocolError

from app.api.body import MalformedJson, parse_json
from app.api.serializers import job_json
from app.channels import JobEventMessage, error_frame, event_frame, queue_frame, snapshot_frame
from app.extensions import db
from app.jobs.models import Job, JobEvent, utcnow
from app.jobs.position import queue_place
from app.jobs.service import find_job, parse_job_id
from app.jobs.states import ACTIVE_STATES, JobState
from app.jobs.view import JobView
from app.owners.capability import grants_read
from app.realtime.hub import QUEUE_MOVED, RESYNC, WAKE, Hub, Subscriber
from app.realtime.transport import CLOSE_LINGER_SECONDS, wake_on_input

log = logging.getLogger(__name__)

# With no traffic for this long, re-check the database in case a publish was lost.
QUIET_RESYNC_SECONDS = 30.0
# Jobs one socket watches, and so the most one subscribe message may name.
MAX_JOBS_PER_SOCKET = 100
WAITING_STATES = frozenset({JobState.ENQUEUED.value, JobState.RETRYING.value})
RECENT_JOBS_ON_SUBSCRIBE = 20


class Socket(Protocol):
    """The part of a simple-websocket connection we use."""

    connected: bool

    def send(self, data: str) -> None: ...
    def receive(self, timeout: float | None = None) -> Any: ...
    def close(self, reason: int | None = None, message: str | None = None) -> None: ...


class _WireCache:
    """Each event's wire text, made once per process (not once per socket) and kept beside the message.

    Keyed by the message's value and the rendering: equal messages render alike, and a replayed event
    (whose job-wide fields are read at replay time) never collides with the live copy of the same seq.
    Bounded: the oldest entries go, so a long-lived process does not grow with its history.
    """

    def __init__(self, size: int = 2048) -> None:
        self._texts: OrderedDict[tuple[JobEventMessage, str], str] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, message: JobEventMessage, rendering: str, build: Callable[[], str]) -> str:
        """The cached text of ``message`` in ``rendering``, built by ``build`` on first use."""
        key = (message, rendering)
        with self._lock:
            text = self._texts.get(key)
            if text is not None:
                self._texts.move_to_end(key)
                return text
        text = build()  # outside the lock: sockets rendering other events do not wait for this one
        with self._lock:
            self._texts[key] = text
            if len(self._texts) > self._size:
                self._texts.popitem(last=False)
        return text


_wire_cache = _WireCache()


class NotificationSession:
    """Drives one socket; only this socket's thread ever sends on it."""

    def __init__(self, ws: Socket, hub: Hub, owner: str | None, fmt: str, capabilities: Sequence[str] = ()) -> None:
        self.ws = ws
        self.hub = hub
        self.owner = owner  # None: an operator watching every owner
        # Read capabilities from the URL (?access=): each opens the one job it was made for, nothing else.
        self.capabilities = tuple(capabilities)[:MAX_JOBS_PER_SOCKET]
        self.fmt = fmt
        self.subscriber = Subscriber(owner=owner)
        self.tracked: dict[str, int] = {}  # job id -> last seq sent
        self.all_since = None

    # -- main loop ------------------------------------------------------------
    def run(self, job_ids: list[str], after_seq: int | None, all_jobs: bool) -> None:
        """Serve the socket until the client goes away."""
        wake_on_input(self.ws, lambda: self.subscriber.offer(WAKE))
        self.hub.add(self.subscriber)
        try:
            if all_jobs:
                self.subscribe_all()
            if job_ids:
                self.subscribe(job_ids, after_seq)
            while self.ws.connected:
                if self.hub.closing.is_set():
                    # 1012 "service restart": htmx and well-behaved clients reconnect elsewhere.
                    self.ws.close(reason=1012, message="server restarting")
                    return
                self._read_client()  # first: messages may have arrived before the hook was in place
                self._pump_inbox()
        finally:
            self.hub.remove(self.subscriber)
            db.session.remove()
            self._let_reader_finish()

    def _let_reader_finish(self) -> None:
        # gunicorn closes the TCP socket as soon as we return: first let simple-websocket's reader finish the
        # close handshake (or drain a too-big message), so the client reads our close frame, not a reset.
        reader = getattr(self.ws, "thread", None)
        if not self.ws.connected and isinstance(reader, threading.Thread) and reader is not threading.current_thread():
            reader.join(CLOSE_LINGER_SECONDS + 0.5)

    def _pump_inbox(self) -> None:
        try:
            item = self.subscriber.inbox.get(timeout=QUIET_RESYNC_SECONDS)
        except queue.Empty:
            self.resync()  # quiet for long: re-check PostgreSQL in case a publish was lost
            return
        while True:
            if item is RESYNC:
                self.resync()
            elif item is QUEUE_MOVED:
                self.push_places()
            elif item is not WAKE:
                self.deliver(item)
            try:
                item = self.subscriber.inbox.get_nowait()
            except queue.Empty:
                return

    def _read_client(self) -> None:
        while (raw := self.ws.receive(timeout=0)) is not None:
            self.handle_client_message(raw)

    # -- client messages --------------------------------------------------------
    def handle_client_message(self, raw: str | bytes) -> None:
        """Apply a ``subscribe`` message; anything malformed gets an error reply, never a crash."""
        try:
            data = parse_json(raw)
        except MalformedJson as exc:
            self.send_error("malformed-message", f"The message {exc}. Send JSON such as "
                            '{"type": "subscribe", "jobs": ["<job id>"], "after_seq": 0}.')
            return
        if not isinstance(data, dict) or data.get("type") != "subscribe":
            self.send_error("unknown-message", 'Only {"type": "subscribe", ...} messages are understood.')
            return
        after = data.get("after_seq")
        if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
            self.send_error("invalid-after-seq", "after_seq must be a non-negative integer.")
            return
        jobs = data.get("jobs", [])
        if isinstance(jobs, str):
            jobs = [jobs]
        if not isinstance(jobs, list) or not all(isinstance(j, str) for j in jobs):
            self.send_error("invalid-jobs", "jobs must be a list of job ids.")
            return
        if data.get("all") is True:
            self.subscribe_all()
        if jobs:
            self.subscribe(jobs, after)

    # -- subscriptions ----------------------------------------------------------
    def _visible(self, job_id: str) -> Job | None:
        job = find_job(None, job_id)  # then this socket's own rule: operator, owner or capability
        return job if job is not None and self.may_read(job) else None

    def may_read(self, job: Job) -> bool:
        """Whether this socket may see ``job``: an operator, its owner, or a holder of its read capability."""
        if self.owner is None or job.owner == self.owner:
            return True
        return bool(self.capabilities) and grants_read(job.id, self.capabilities)

    def subscribe(self, job_ids: list[str], after_seq: int | None) -> None:
        """Watch jobs: each one's current state, then its recorded events after ``after_seq``, then live.

        However many ids a message names, it costs one query for the jobs (and one for replayed events) and
        at most one error frame per kind of refusal.
        """
        wanted = list(dict.fromkeys(job_ids))  # order kept, repeats dropped
        if len(wanted) > MAX_JOBS_PER_SOCKET:
            self.send_error("too-many-jobs", f"One message can name at most {MAX_JOBS_PER_SOCKET} jobs "
                            f"(this one names {len(wanted)}); nothing was subscribed.")
            return
        try:
            jobs, unknown = self._visible_jobs(wanted)
            if unknown:
                self.send_error("job-not-found", "There is no job with these ids among your jobs.", jobs=unknown)
            room = MAX_JOBS_PER_SOCKET - len(self.tracked)
            new = [job for job in jobs if str(job.id) not in self.tracked]
            if len(new) > room:
                refused = {job.id for job in new[max(room, 0):]}
                jobs = [job for job in jobs if job.id not in refused]
                self.send_error("too-many-jobs", f"A socket can watch at most {MAX_JOBS_PER_SOCKET} jobs.",
                                jobs=[str(key) for key in refused])
            recorded = self._recorded_events(jobs, after_seq) if after_seq is not None else {}
            for job in jobs:
                # Watch first: a live event racing the snapshot is queued, then dropped by seq if already sent.
                self.hub.watch_job(self.subscriber, str(job.id))
                self.send_snapshot(job)
                for event in recorded.get(job.id, ()):
                    self.send_event(recorded_message(job, event), replay=True)
                self.tracked[str(job.id)] = job.last_seq
        finally:
            db.session.remove()  # never pin a pooled connection for the socket's lifetime

    def _visible_jobs(self, job_ids: list[str]) -> tuple[list[Job], list[str]]:
        """The jobs this socket may see among ``job_ids`` (one query), and the ids that name none of them."""
        keys = {job_id: parse_job_id(job_id) for job_id in job_ids}
        wanted = {key for key in keys.values() if key is not None}
        found = db.session.execute(db.select(Job).where(Job.id.in_(wanted))).scalars().all() if wanted else []
        visible = {job.id: job for job in found if self.may_read(job)}
        jobs = [visible[key] for key in dict.fromkeys(keys.values()) if key in visible]
        return jobs, [job_id[:64] for job_id, key in keys.items() if key not in visible]

    def _recorded_events(self, jobs: list[Job], after: int) -> dict[uuid.UUID, list[JobEvent]]:
        """Each job's stored events after ``after`` up to its snapshot, all in one query."""
        upto = {job.id: job.last_seq for job in jobs}
        if not upto:
            return {}
        events = db.session.execute(
            db.select(JobEvent).where(JobEvent.job_id.in_(upto), JobEvent.seq > after)
            .order_by(JobEvent.job_id, JobEvent.seq)
        ).scalars()
        grouped: dict[uuid.UUID, list[JobEvent]] = {}
        for event in events:
            if event.seq <= upto[event.job_id]:
                grouped.setdefault(event.job_id, []).append(event)
        return grouped

    def subscribe_all(self) -> None:
        """Watch every job of the owner (every owner for operators): active and recent ones now, new ones live."""
        self.hub.watch_all(self.subscriber)
        self.all_since = utcnow()
        try:
            query = db.select(Job).order_by(Job.created_at.desc()).limit(RECENT_JOBS_ON_SUBSCRIBE)
            active = db.select(Job).where(Job.state.in_([s.value for s in ACTIVE_STATES])).limit(MAX_JOBS_PER_SOCKET)
            if self.owner is not None:
                query = query.where(Job.owner == self.owner)
                active = active.where(Job.owner == self.owner)
            jobs = {j.id: j for j in db.session.execute(query).scalars()}
            jobs.update({j.id: j for j in db.session.execute(active).scalars()})
            for job in sorted(jobs.values(), key=lambda j: j.created_at):
                self.send_snapshot(job)
                self.tracked[str(job.id)] = job.last_seq
        finally:
            db.session.remove()

    # -- delivery ---------------------------------------------------------------
    def deliver(self, message: JobEventMessage) -> None:
        """Send a live event exactly once and in order, filling any gap from the database."""
        last = self.tracked.get(message.job_id)
        if last is None and message.seq == 1:
            last = 0  # a job created after we subscribed: its first event is its whole story so far
        if last is None:
            # A job we did not know yet (watching all) that is past its first event: start from its current state.
            try:
                job = self._visible(message.job_id)
                if job is not None:
                    self.send_snapshot(job)
                    self.tracked[message.job_id] = job.last_seq
            finally:
                db.session.remove()
            return
        if message.seq <= last:
            return
        if message.seq > last + 1:
            # Events committed by two processes can be published out of order: fill the gap from PostgreSQL.
            try:
                self._send_recorded(message.job_id, last, message.seq - 1)
            finally:
                db.session.remove()  # never leave the socket's thread holding a transaction
        self.send_event(message)
        self.tracked[message.job_id] = message.seq

    def resync(self) -> None:
        """Catch up from PostgreSQL after the listener lost Redis or this socket fell behind."""
        try:
            if self.tracked:
                ids = [uuid.UUID(j) for j in self.tracked]
                latest = dict(db.session.execute(db.select(Job.id, Job.last_seq).where(Job.id.in_(ids))).all())
                for job_id, seq in latest.items():
                    known = self.tracked[str(job_id)]
                    if seq > known:
                        self._send_recorded(str(job_id), known, seq)
                        self.tracked[str(job_id)] = seq
            if self.all_since is not None:
                # New since we subscribed, or still moving: both index-backed (updated_at has no index, and a
                # resync must not read the whole history).
                since = self.all_since - timedelta(seconds=5)
                active = Job.state.in_([s.value for s in ACTIVE_STATES])
                query = db.select(Job).where(sa.or_(Job.created_at >= since, active)).limit(200)
                if self.owner is not None:
                    query = query.where(Job.owner == self.owner)
                for job in db.session.execute(query).scalars():
                    if str(job.id) not in self.tracked:
                        self.send_snapshot(job)
                        self.tracked[str(job.id)] = job.last_seq
        finally:
            db.session.remove()

    def _send_recorded(self, job_id: str, after: int, upto: int) -> None:
        job = db.session.get(Job, uuid.UUID(job_id))
        if job is None:
            return
        events = db.session.execute(
            db.select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.seq > after, JobEvent.seq <= upto)
            .order_by(JobEvent.seq)
        ).scalars()
        for event in events:
            self.send_event(recorded_message(job, event), replay=True)

    # -- places in line ---------------------------------------------------------
    def _note_state(self, job_id: str, state: str) -> None:
        """Keep the set of shown jobs that wait in line (the hub wakes this socket when the line moves)."""
        if state in WAITING_STATES:
            self.subscriber.waiting.add(job_id)
        else:
            self.subscriber.waiting.discard(job_id)

    def push_places(self) -> None:
        """The line moved: send each waiting job's new place (JSON ``queue`` frame, or its redrawn status)."""
        try:
            ids = [uuid.UUID(j) for j in list(self.subscriber.waiting)]
            for job in db.session.execute(db.select(Job).where(Job.id.in_(ids))).scalars():
                place = queue_place(job)
                if place is None:
                    continue  # handed to a worker: its Processing event comes next
                if self.fmt == "html":
                    self._send(render_template("jobs/_status.html", view=JobView.from_job(job, place), poll=False))
                else:
                    self._send(queue_frame(str(job.id), place.to_json()))
        finally:
            db.session.remove()

    # -- wire formats -----------------------------------------------------------
    def send_snapshot(self, job: Job) -> None:
        """The job's whole current state."""
        self._note_state(str(job.id), job.state)
        place = queue_place(job)
        if self.fmt == "html":
            # Whole state: the status and the full notification list (replacing any stale copy).
            from app.web.pages import history

            view = JobView.from_job(job, place)
            self._send(render_template("jobs/_status.html", view=view, poll=False) + "\n" +
                       render_template("jobs/_notifications.html", view=view, events=history(job), oob=True))
        else:
            self._send(snapshot_frame(job_json(job, operator=self.owner is None,
                                                 actions=self.owner in (None, job.owner), place=place)))

    def send_event(self, message: JobEventMessage, replay: bool = False) -> None:
        """One event: JSON as is, or (HTML) the redrawn status plus a notification line."""
        self._note_state(message.job_id, message.state)
        rendering = f"{self.fmt}-replay" if replay else self.fmt
        if self.fmt == "html":
            data = _wire_cache.get(message, rendering, lambda: self._render_event(message, replay))
            if data:
                self._send(data)
        else:
            self._send(_wire_cache.get(message, rendering, lambda: event_frame(message, replay)))

    @staticmethod
    def _render_event(message: JobEventMessage, replay: bool) -> str:
        parts = [] if replay else [render_template("jobs/_status.html", view=JobView.from_event(message), poll=False)]
        if message.kind != "progress":
            parts.append(render_template("jobs/_notification.html", event=message))
        return "\n".join(parts)

    def send_error(self, code: str, detail: str, jobs: list[str] | tuple[str, ...] = ()) -> None:
        """An error the client can act on; the socket stays open."""
        if self.fmt == "html":
            self._send(f'<div id="notifications-error" class="error">{_escape(detail)}</div>')
        else:
            self._send(error_frame(code, detail, jobs))

    def _send(self, data: str) -> None:
        try:
            self.ws.send(data)
        except (OSError, LocalProtocolError) as exc:
            # The client vanished mid-send: end this socket quietly (flask-sock handles ConnectionClosed).
            raise ConnectionClosed() from exc


def recorded_message(job: Job, event: JobEvent) -> JobEventMessage:
    """A stored event in the live wire format (job-wide fields reflect the job now)."""
    from app.jobs.lifecycle import event_message

    return event_message(job, event)


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))
