"""What the broker holds right now: the task ids waiting in this deployment's queue or held by a worker."""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.channels import Namespace, redis_client

PAGE = 1000


@dataclass(frozen=True)
class BrokerView:
    """A snapshot of where messages are: ``waiting`` in the queue, ``held`` by workers (id -> delivered at)."""

    waiting: frozenset[str]
    held: Mapping[str, float]

    def holds(self, task_id: str | None) -> bool:
        """Whether a message with ``task_id`` is anywhere in the broker."""
        return task_id in self.waiting or task_id in self.held

    def held_longer_than(self, task_id: str | None, seconds: float) -> bool:
        """Whether a worker took ``task_id`` more than ``seconds`` ago (and, the job being unclaimed, sits on it)."""
        delivered = self.held.get(task_id or "")
        return delivered is not None and time.time() - delivered > seconds


def _task_id(payload: Any) -> str | None:
    """The Celery task id of a kombu message as stored in Redis (headers.id in protocol 2)."""
    try:
        message = json.loads(payload)
        if isinstance(message, list):  # unacked entries are [message, exchange, routing key]
            message = message[0]
        return message["headers"]["id"]
    except (ValueError, TypeError, KeyError, IndexError):
        return None


def _ids(payloads: Iterable[Any]) -> set[str]:
    return {tid for tid in map(_task_id, payloads) if tid}


def snapshot(config: Mapping[str, Any]) -> BrokerView:
    """Read the queue, then the unacknowledged messages (``redis.RedisError`` if Redis is unreachable).

    The queue is read first: a message that moves to a worker in between is then seen in one place or the other,
    except in the instant between the worker's pop and its bookkeeping, which the caller's re-check and the
    task-id check at claim time make harmless (a redundant publish is dropped as stale, never run twice).
    """
    names = Namespace.of(config)
    client = redis_client(config["REDIS_URL"])
    key = names.queue_key(config["LONGRUN_QUEUE"])
    waiting: set[str] = set()
    # Workers pop from the right and publishers push on the left: pages from the left never skip a message.
    start = 0
    while True:
        page = client.lrange(key, start, start + PAGE - 1)
        waiting |= _ids(page)
        if len(page) < PAGE:
            break
        start += PAGE
    delivered_at = dict(client.zrange(names.unacked_index_key, 0, -1, withscores=True))
    held: dict[str, float] = {}
    for tag, payload in client.hscan_iter(names.unacked_key, count=PAGE):
        tid = _task_id(payload)
        if tid:
            held[tid] = float(delivered_at.get(tag, time.time()))
    return BrokerView(frozenset(waiting), held)
