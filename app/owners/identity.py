"""Resolve the owner of every request: a bearer token, else an anonymous signed-cookie identity."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from flask import g, request, session

from app.errors import ApiError
from app.extensions import db
from app.owners.models import ApiToken

TOKEN_PREFIX = "lr_"
OPERATOR_PATHS = ("/dashboard", "/metrics")


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random bearer token (shown once, then only its hash is kept)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_owner(token: str) -> str | None:
    """The owner of an active token, or None."""
    digest = hash_token(token)
    row = db.session.execute(
        db.select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
    ).scalar_one_or_none()
    # Compare again in constant time; the index lookup itself is by hash, not by secret.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row.owner


def resolve_owner() -> str:
    """Set and return ``g.owner`` for this request (``before_request`` hook)."""
    header = request.headers.get("Authorization")
    # Operator pages take their own credentials (see app.dashboard.access).
    if header is not None and not request.path.startswith(OPERATOR_PATHS):
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Unauthorized", "Use 'Authorization: Bearer <token>'.", slug="unauthorized")
        owner = token_owner(token.strip())
        if owner is None:
            raise ApiError(401, "Unauthorized", "The bearer token is unknown or revoked.", slug="unauthorized")
        g.owner = f"user:{owner}"
        g.auth = "bearer"
        return g.owner
    owner = session.get("owner")
    if not isinstance(owner, str) or not owner.startswith("anon:"):
        owner = f"anon:{uuid.uuid4().hex}"
        session["owner"] = owner
        session.permanent = True
    g.owner = owner
    g.auth = "cookie"
    return owner


def current_owner() -> str:
    """The owner resolved for this request."""
    return g.owner
