"""The one place that owns Redis channel names and the job-event message schema."""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SOCKET_COUNT_TTL = 30


@dataclass(frozen=True)
class Namespace:
    """Every Redis name of one deployment (``LONGRUN_INSTANCE``): queue, channels and keys.

    Pub/sub channels are server-wide, even across DB numbers, and two apps on one DB share queue names:
    everything a deployment puts in Redis starts with its own prefix, so two never touch each other's.
    """

    instance: str

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> "Namespace":
        """The namespace of an app config."""
        return cls(config["LONGRUN_INSTANCE"])

    @property
    def prefix(self) -> str:
        """Prepended to every key and channel (Celery's too, as kombu's ``global_keyprefix``)."""
        return f"longrun:{self.instance}:"

    @property
    def job_events(self) -> str:
        """One channel for every job event: each web process has a single listener and routes in memory."""
        return self.prefix + "job-events"

    @property
    def queue_moves(self) -> str:
        """A bare notice that the line moved (jobs handed out, dispatch paused or resumed): places changed."""
        return self.prefix + "queue-moves"

    @property
    def socket_counts(self) -> str:
        """Each web process reports its open sockets under this prefix, in its own expiring key."""
        return self.prefix + "sockets:"

    def queue_key(self, queue: str) -> str:
        """The Redis list that holds a Celery queue's waiting messages."""
        return self.prefix + queue

    @property
    def unacked_key(self) -> str:
        """The hash of messages delivered to a worker and not acknowledged yet (kombu's ack emulation)."""
        return self.prefix + "unacked"

    @property
    def unacked_index_key(self) -> str:
        """When each unacknowledged message was delivered (kombu's sorted set, scored by time)."""
        return self.prefix + "unacked_index"


@dataclass(frozen=True)
class JobEventMessage:
    """What travels on ``Namespace.job_events`` (and, as JSON, to WebSocket clients)."""

    job_id: str
    owner: str
    report: str
    seq: int
    kind: str  # state | progress | log
    state: str
    progress: float
    message: str | None
    attempt: int
    ts: str
    # The job's whole public state after this event, so a client can redraw from one message.
    done: int | None = None
    total: int | None = None
    progress_message: str | None = None
    max_attempts: int = 0
    cancel_requested: bool = False
    error: str | None = None
    has_result: bool = False
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    v: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (all flat values: no deep copy, unlike ``dataclasses.asdict``)."""
        return dict(vars(self))

    def to_json(self) -> str:
        """Serialise for the wire."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> "JobEventMessage":
        """Parse a message; ``ValueError`` if it is not one of ours."""
        data: dict[str, Any] = json.loads(raw)
        if not isinstance(data, dict) or data.get("v") != SCHEMA_VERSION:
            raise ValueError("not a job event of this schema version")
        return cls(**data)


class _ClientHolder:
    """A Redis client per process: rebuilt after fork, shared by threads (redis-py pools are thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._client: redis.Redis | None = None
        self._url: str | None = None

    def get(self, url: str) -> redis.Redis:
        with self._lock:
            if self._client is None or self._pid != os.getpid() or self._url != url:
                self._client = redis.Redis.from_url(
                    url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
                )
                self._pid = os.getpid()
                self._url = url
            return self._client


_clients = _ClientHolder()


def redis_client(url: str) -> redis.Redis:
    """The process-wide Redis client for ``url``."""
    return _clients.get(url)


def publish_events(url: str, namespace: Namespace, messages: list[JobEventMessage]) -> bool:
    """Publish events in order, in one round trip; a Redis outage is logged, never raised (PostgreSQL has them)."""
    if not messages:
        return True
    try:
        pipe = redis_client(url).pipeline(transaction=False)
        for message in messages:
            pipe.publish(namespace.job_events, message.to_json())
        pipe.execute()
        return True
    except redis.RedisError as exc:
        first = messages[0]
        log.warning("could not publish %d event(s) from %s#%s: %s", len(messages), first.job_id, first.seq, exc)
        return False


# -- The JSON frames a /notifications socket sends: their exact keys, defined once (session.py builds every
# frame with the helpers below, and tests pin these sets over a real socket). -------------------------------
SOCKET_FRAME_KEYS: dict[str, frozenset[str]] = {
    # A job's whole public state: "job" is what GET /jobs/<id> answers (app.api.serializers.job_json).
    "snapshot": frozenset({"type", "job"}),
    # One numbered event: a JobEventMessage without its owner, and whether it was replayed from PostgreSQL.
    "event": frozenset(JobEventMessage.__dataclass_fields__) - {"owner"} | {"type", "replay"},
    # A client message we could not act on; "jobs" lists the job ids it concerns (often none).
    "error": frozenset({"type", "error", "detail", "jobs"}),
    # A waiting job's place in line, pushed when the line moves (app.jobs.position.QueuePlace).
    "queue": frozenset({"type", "job_id", "position", "predicted_start", "paused"}),
}


def snapshot_frame(job: dict[str, Any]) -> str:
    """A ``snapshot`` frame for a job's public JSON."""
    return json.dumps({"type": "snapshot", "job": job})


def event_frame(message: JobEventMessage, replay: bool) -> str:
    """An ``event`` frame: only the schema's keys, whatever else the message object carries."""
    keys = SOCKET_FRAME_KEYS["event"]
    body = {key: value for key, value in vars(message).items() if key in keys}
    body.update(type="event", replay=replay)
    return json.dumps(body)


def queue_frame(job_id: str, place: dict[str, Any]) -> str:
    """A ``queue`` frame: where a waiting job stands now (``place`` is ``QueuePlace.to_json()``)."""
    return json.dumps({"type": "queue", "job_id": job_id, **place})


def publish_queue_moved(url: str, namespace: Namespace) -> None:
    """Tell every web process that places in line changed (they recompute for the sockets that care)."""
    try:
        redis_client(url).publish(namespace.queue_moves, "1")
    except redis.RedisError as exc:
        log.warning("could not announce a queue move: %s", exc)  # sockets re-read on their quiet resync


def error_frame(code: str, detail: str, jobs: list[str] | tuple[str, ...] = ()) -> str:
    """An ``error`` frame; the socket stays open."""
    return json.dumps({"type": "error", "error": code, "detail": detail, "jobs": list(jobs)})
