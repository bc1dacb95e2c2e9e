"""One Redis listener per web process, fanning job events out to per-socket queues."""
from __future__ import annotations

import logging
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from app.channels import SOCKET_COUNT_TTL, JobEventMessage, Namespace

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000


class Resync:
    """Queue marker: events may have been missed; re-read them from the database."""


RESYNC = Resync()
# Queue marker: something other than an event needs the socket's thread (a client message, a close).
WAKE = object()
# Queue marker: the line moved; the socket re-reads the places of the waiting jobs it shows.
QUEUE_MOVED = object()
# Places are pushed at most this often per process, however fast the line moves.
QUEUE_PUSH_SECONDS = 1.0


@dataclass(eq=False)
class Subscriber:
    """One socket's interest: an owner's jobs, chosen job ids, or every job (operators)."""

    owner: str | None  # None: operator watching every owner
    job_ids: set[str] = field(default_factory=set)
    all_jobs: bool = False
    # Jobs this socket shows that wait in line (kept by the session): only these sockets hear of queue moves.
    waiting: set[str] = field(default_factory=set)
    inbox: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=QUEUE_SIZE))

    def wants(self, message: JobEventMessage) -> bool:
        """Whether ``message`` belongs on this socket."""
        if message.job_id in self.job_ids:
            return True  # watch_job's caller checked the socket may read it (as owner or by capability)
        return self.all_jobs and (self.owner is None or message.owner == self.owner)

    def offer(self, item: object) -> None:
        """Queue without blocking the listener; a full inbox turns into one resync."""
        try:
            self.inbox.put_nowait(item)
        except queue.Full:
            _drain(self.inbox)
            self.inbox.put_nowait(RESYNC)


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


class Hub:
    """The process's listener thread and its subscribers."""

    def __init__(self, redis_url: str, namespace: Namespace) -> None:
        self.redis_url = redis_url
        self.namespace = namespace
        self._lock = threading.Lock()
        self._subscribers: set[Subscriber] = set()
        self._by_job: dict[str, set[Subscriber]] = {}
        self._by_owner: dict[str | None, set[Subscriber]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.connected = threading.Event()
        # Set on SIGTERM: sockets close with 1012 so clients reconnect to another process.
        self.closing = threading.Event()

    # -- subscribers ----------------------------------------------------------
    # Indexes keep routing O(interested sockets), not O(all sockets), per event.
    def add(self, subscriber: Subscriber) -> None:
        """Register a socket (it receives nothing until it watches something)."""
        self.ensure_running()
        with self._lock:
            self._subscribers.add(subscriber)

    def watch_job(self, subscriber: Subscriber, job_id: str) -> None:
        """Route events of ``job_id`` to ``subscriber`` (ownership is checked by the caller)."""
        with self._lock:
            subscriber.job_ids.add(job_id)
            self._by_job.setdefault(job_id, set()).add(subscriber)

    def watch_all(self, subscriber: Subscriber) -> None:
        """Route every event of the subscriber's owner (every owner for operators)."""
        with self._lock:
            subscriber.all_jobs = True
            self._by_owner.setdefault(subscriber.owner, set()).add(subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        """Stop routing events to ``subscriber``."""
        with self._lock:
            self._subscribers.discard(subscriber)
            for job_id in subscriber.job_ids:
                watchers = self._by_job.get(job_id)
                if watchers is not None:
                    watchers.discard(subscriber)
                    if not watchers:
                        del self._by_job[job_id]
            watchers = self._by_owner.get(subscriber.owner)
            if watchers is not None:
                watchers.discard(subscriber)
                if not watchers:
                    del self._by_owner[subscriber.owner]

    @property
    def socket_count(self) -> int:
        """Open sockets in this process."""
        with self._lock:
            return len(self._subscribers)

    def route(self, message: JobEventMessage) -> None:
        """Hand ``message`` to every subscriber that wants it."""
        with self._lock:
            targets = set(self._by_job.get(message.job_id, ()))
            targets.update(self._by_owner.get(message.owner, ()))
            targets.update(self._by_owner.get(None, ()))
        for subscriber in targets:
            if subscriber.wants(message):
                subscriber.offer(message)

    def _tell_waiting(self) -> None:
        """Wake every socket that shows a waiting job: its place changed."""
        with self._lock:
            targets = [s for s in self._subscribers if s.waiting]
        for subscriber in targets:
            subscriber.offer(QUEUE_MOVED)

    def _resync_all(self) -> None:
        with self._lock:
            targets = list(self._subscribers)
        for subscriber in targets:
            subscriber.offer(RESYNC)

    # -- listener -------------------------------------------------------------
    def ensure_running(self) -> None:
        """Start the listener thread in this process if it is not running."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._listen_forever, name="longrun-hub", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the listener (tests, shutdown)."""
        self._stop.set()

    def _listen_forever(self) -> None:
        backoff = 0.2
        first = True
        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5,
                                              health_check_interval=10)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.namespace.job_events, self.namespace.queue_moves)
                self.connected.set()
                if not first:
                    # Whatever was published while we were away is only in PostgreSQL now.
                    log.info("event listener reconnected to Redis")
                    self._resync_all()
                first = False
                backoff = 0.2
                self._pump(pubsub, client)
            except (redis.RedisError, OSError) as exc:
                self.connected.clear()
                log.warning("event listener lost Redis (%s); retrying in %.1f s", exc, backoff)
                self._stop.wait(backoff + random.uniform(0, backoff / 2))
                backoff = min(backoff * 2, 5.0)

    def _report_sockets(self, client: redis.Redis) -> None:
        key = f"{self.namespace.socket_counts}{socket.gethostname()}:{os.getpid()}"
        client.set(key, self.socket_count, ex=SOCKET_COUNT_TTL)

    def _pump(self, pubsub: redis.client.PubSub, client: redis.Redis) -> None:
        last_check = 0.0
        moved, last_push = False, 0.0
        moves = self.namespace.queue_moves.encode()
        while not self._stop.is_set():
            # A bounded wait, never listen(): a half-open connection must not hang us forever.
            raw = pubsub.get_message(timeout=QUEUE_PUSH_SECONDS if moved else 1.0)
            if raw is not None and raw.get("type") == "message":
                if raw.get("channel") == moves:
                    moved = True
                else:
                    try:
                        self.route(JobEventMessage.from_json(raw["data"]))
                    except (ValueError, TypeError) as exc:
                        log.warning("ignoring malformed event: %s", exc)
            if moved and time.monotonic() - last_push >= QUEUE_PUSH_SECONDS:
                self._tell_waiting()
                moved, last_push = False, time.monotonic()
            if time.monotonic() - last_check > 10:
                pubsub.check_health()
                self._report_sockets(client)
                last_check = time.monotonic()
        pubsub.close()


_hub: Hub | None = None
_hub_pid: int | None = None
_hub_lock = threading.Lock()


def get_hub(config: Mapping[str, Any]) -> Hub:
    """This process's hub for the app ``config`` (a new one after fork: threads do not survive it)."""
    global _hub, _hub_pid
    redis_url, namespace = config["REDIS_URL"], Namespace.of(config)
    with _hub_lock:
        if _hub is None or _hub_pid != os.getpid() or (_hub.redis_url, _hub.namespace) != (redis_url, namespace):
            _hub = Hub(redis_url, namespace)
            _hub_pid = os.getpid()
        return _hub


def begin_shutdown() -> None:
    """Ask every socket of this process to close with 1012 (service restart), waking each handler."""
    with _hub_lock:
        hub = _hub if _hub_pid == os.getpid() else None
    if hub is not None:
        hub.closing.set()
        with hub._lock:
            subscribers = list(hub._subscribers)
        for subscriber in subscribers:
            subscriber.offer(WAKE)
