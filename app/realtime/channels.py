"""The one place that owns Redis channel names and the job-event message schema."""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import redis

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# One channel for every job event: each web process has a single listener and routes in memory.
JOB_EVENTS_CHANNEL = "longrun:job-events"
# Each web process reports its open sockets under its own expiring key (summed by /metrics).
SOCKET_COUNT_PREFIX = "longrun:sockets:"
SOCKET_COUNT_TTL = 30


@dataclass(frozen=True)
class JobEventMessage:
    """What travels on ``JOB_EVENTS_CHANNEL`` (and, as JSON, to WebSocket clients)."""

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


def publish_events(url: str, messages: list[JobEventMessage]) -> bool:
    """Publish events in order, in one round trip; a Redis outage is logged, never raised (PostgreSQL has them)."""
    if not messages:
        return True
    try:
        pipe = redis_client(url).pipeline(transaction=False)
        for message in messages:
            pipe.publish(JOB_EVENTS_CHANNEL, message.to_json())
        pipe.execute()
        return True
    except redis.RedisError as exc:
        first = messages[0]
        log.warning("could not publish %d event(s) from %s#%s: %s", len(messages), first.job_id, first.seq, exc)
        return False
