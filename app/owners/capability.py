"""Per-job read capabilities: a token that lets whoever holds it read one job without being its owner.

A client that keeps no cookies is a new anonymous owner on every request, so ``POST /reports/v2`` then
``GET <Location>`` would find nothing. The 202 answer therefore carries the job's read capability in its
``Location`` (``/jobs/{id}?access=<token>``). The token is derived, not stored: HMAC-SHA256 of the job id
under ``SECRET_KEY``, cut to 128 bits. It opens that one job's status, events, result and live
notifications, never another job, and never an action (list, cancel, retry, delete stay with the owner).
Rotating ``SECRET_KEY`` revokes every capability at once.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Iterable

from flask import current_app

ACCESS_PARAM = "access"  # the query parameter that carries a capability
_PURPOSE = b"longrun/job-read/v1:"  # domain separation from every other use of SECRET_KEY
_TOKEN_BYTES = 16


def job_capability(job_id: uuid.UUID | str) -> str:
    """The read capability of one job (URL-safe, 22 characters)."""
    secret = current_app.config["SECRET_KEY"]
    key = secret if isinstance(secret, bytes) else secret.encode()
    digest = hmac.new(key, _PURPOSE + str(uuid.UUID(str(job_id))).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_TOKEN_BYTES]).rstrip(b"=").decode()


def grants_read(job_id: uuid.UUID | str, tokens: Iterable[str | None]) -> bool:
    """True when one of ``tokens`` is the read capability of ``job_id``; each is compared in constant time."""
    try:
        expected = job_capability(job_id).encode()
    except ValueError:  # not a job id at all
        return False
    found = False
    for token in tokens:
        # No early exit: how many tokens were tried, not which one matched, is all the timing can tell.
        found |= bool(token) and hmac.compare_digest(expected, str(token).encode())
    return found
