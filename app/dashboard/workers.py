"""Workers and queues, asked of Celery (always with a short timeout) and of Redis."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app

from app.channels import Namespace, redis_client

log = logging.getLogger(__name__)

INSPECT_TIMEOUT = 1.0


@dataclass
class WorkerInfo:
    """One Celery worker node as the dashboard shows it."""

    name: str
    active: int
    concurrency: int | None
    processed: int | None


def workers() -> tuple[list[WorkerInfo], str | None]:
    """Live workers, or an empty list and the reason when the broker cannot be asked."""
    try:
        inspect = current_app.extensions["celery"].control.inspect(timeout=INSPECT_TIMEOUT)
        active = inspect.active() or {}
        stats = inspect.stats() or {}
    except Exception as exc:
        log.warning("celery inspect failed: %s", exc)
        return [], f"cannot reach the broker ({exc.__class__.__name__})"
    names = sorted(set(active) | set(stats))
    out = []
    for name in names:
        s = stats.get(name, {})
        total = s.get("total") or {}
        out.append(WorkerInfo(name=name, active=len(active.get(name, [])),
                              concurrency=(s.get("pool") or {}).get("max-concurrency"),
                              processed=sum(total.values()) if isinstance(total, dict) else None))
    return out, None


def queue_lengths() -> tuple[dict[str, int], str | None]:
    """Messages waiting per queue and unacknowledged (running or reserved), from Redis."""
    name, names = current_app.config["LONGRUN_QUEUE"], Namespace.of(current_app.config)
    try:
        client = redis_client(current_app.config["REDIS_URL"])
        pipe = client.pipeline()
        pipe.llen(names.queue_key(name))
        pipe.hlen(names.unacked_key)
        waiting, unacked = pipe.execute()
    except Exception as exc:
        return {}, f"cannot reach Redis ({exc.__class__.__name__})"
    return {name: int(waiting), "unacked": int(unacked)}, None
