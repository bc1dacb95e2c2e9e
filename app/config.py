"""Configuration read from the environment, with safe development defaults."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
# What a request from this host may do on the dashboard and /metrics without a credential.
LOCAL_ROLES = ("operator", "viewer", "none")


class ConfigError(RuntimeError):
    """Raised at start-up when the environment is unusable (for example a missing secret)."""


def normalize_database_url(url: str) -> str:
    """Map Heroku's ``postgres://`` and bare ``postgresql://`` to the psycopg2 driver we ship."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def default_instance(database_url: str) -> str:
    """A short name for the database this deployment keeps its jobs in: its Redis queue, channels and keys.

    Two deployments on one Redis must never share a queue or a channel; two processes of one deployment must.
    The database is what a deployment is, so its identity (engine, host, port, name or SQLite file) names it.
    """
    url = make_url(normalize_database_url(database_url))
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = str(Path(url.database or "memory").resolve()) if url.database else "memory"
        identity, label = f"sqlite:{path}", Path(path).stem
    else:
        host = url.host or "localhost"
        host = "localhost" if host in {"127.0.0.1", "::1"} else host.lower()
        port = url.port or {"postgresql": 5432, "mysql": 3306}.get(backend, "")
        identity, label = f"{backend}://{host}:{port}/{url.database}", url.database or backend
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_-]+', '-', label)[:40]}-{digest}"


def _number(name: str, default: float, cast: type, kind: str) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from exc


def _int(name: str, default: int) -> int:
    return int(_number(name, default, int, "an integer"))


def _float(name: str, default: float) -> float:
    return float(_number(name, default, float, "a number"))


def load_config(overrides: dict | None = None) -> dict:
    """Build the Flask config mapping from the environment, then apply ``overrides``."""
    env = os.environ.get("LONGRUN_ENV", "production").lower()
    if env not in {"production", "development", "testing"}:
        raise ConfigError(f"LONGRUN_ENV must be production, development or testing, got {env!r}")
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{ROOT / 'instance' / 'longrun.db'}"
    visibility_timeout = _int("LONGRUN_VISIBILITY_TIMEOUT", 7200)
    cfg: dict = {
        "LONGRUN_ENV": env,
        "SECRET_KEY": os.environ.get("SECRET_KEY"),
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
        # Bodies are tiny JSON documents; anything bigger is a mistake or abuse.
        "MAX_CONTENT_LENGTH": _int("LONGRUN_MAX_BODY_BYTES", 64 * 1024),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env == "production" and os.environ.get("LONGRUN_INSECURE_COOKIES") != "1",
        "PERMANENT_SESSION_LIFETIME": 60 * 60 * 24 * 365,
        # Progress is written at most this often per job (seconds); the last value always is.
        "LONGRUN_PROGRESS_FLUSH_SECONDS": _float("LONGRUN_PROGRESS_FLUSH_SECONDS", 0.25),
        "LONGRUN_HEARTBEAT_SECONDS": _float("LONGRUN_HEARTBEAT_SECONDS", 5.0),
        # A Processing job whose heartbeat is older than this is considered orphaned.
        "LONGRUN_STALE_AFTER_SECONDS": _float("LONGRUN_STALE_AFTER_SECONDS", 30.0),
        "LONGRUN_CANCEL_POLL_SECONDS": _float("LONGRUN_CANCEL_POLL_SECONDS", 0.5),
        # A pooled PostgreSQL connection idle this long is pinged before use (0: before every use).
        "LONGRUN_DB_PING_IDLE_SECONDS": _float("LONGRUN_DB_PING_IDLE_SECONDS", 1.0),
        "LONGRUN_SWEEP_SECONDS": _float("LONGRUN_SWEEP_SECONDS", 10.0),
        # An Enqueued job not picked up this long after publish is published again.
        "LONGRUN_REDISPATCH_AFTER_SECONDS": _float("LONGRUN_REDISPATCH_AFTER_SECONDS", visibility_timeout),
        "LONGRUN_RETRY_BACKOFF_SECONDS": _float("LONGRUN_RETRY_BACKOFF_SECONDS", 2.0),
        "LONGRUN_RETRY_BACKOFF_MAX_SECONDS": _float("LONGRUN_RETRY_BACKOFF_MAX_SECONDS", 300.0),
        "LONGRUN_SOFT_TIME_LIMIT": _int("LONGRUN_SOFT_TIME_LIMIT", 3000),
        "LONGRUN_HARD_TIME_LIMIT": _int("LONGRUN_HARD_TIME_LIMIT", 3600),
        "LONGRUN_VISIBILITY_TIMEOUT": visibility_timeout,
        # Results are streamed in chunks (app/jobs/results.py): the limit is about disk, not memory.
        "LONGRUN_MAX_RESULT_BYTES": _int("LONGRUN_MAX_RESULT_BYTES", 4 * 1024 ** 3),
        # A checkpoint is a cursor, not data: kept on the job row, written with every progress sample.
        "LONGRUN_MAX_CHECKPOINT_BYTES": _int("LONGRUN_MAX_CHECKPOINT_BYTES", 64 * 1024),
        "LONGRUN_QUEUE": os.environ.get("LONGRUN_QUEUE", "longrun"),
        # Names this deployment's queue, channels and keys in Redis (default: derived from DATABASE_URL).
        "LONGRUN_INSTANCE": os.environ.get("LONGRUN_INSTANCE", ""),
        "LONGRUN_V1_SECONDS": _float("LONGRUN_V1_SECONDS", 10.0),
        # The blocking endpoint holds a server thread: cap how long a caller may ask it to block.
        "LONGRUN_V1_MAX_SECONDS": _float("LONGRUN_V1_MAX_SECONDS", 60.0),
        # Operator access: local requests get this role (operator, viewer or none); others need a credential.
        # Unset: none in production, where a reverse proxy on the same host makes every visitor local.
        "LONGRUN_DASHBOARD_LOCAL_ROLE": os.environ.get("LONGRUN_DASHBOARD_LOCAL_ROLE") or None,
        "LONGRUN_OPERATOR_TOKEN": os.environ.get("LONGRUN_OPERATOR_TOKEN", ""),
        "LONGRUN_VIEWER_TOKEN": os.environ.get("LONGRUN_VIEWER_TOKEN", ""),
        # Number of trusted proxies in front of the app (Heroku's router: 1) for client addresses.
        "LONGRUN_PROXY_COUNT": _int("LONGRUN_PROXY_COUNT", 0),
        # Address-space budget for one job attempt in a worker process (MB, 0 = unlimited).
        "LONGRUN_JOB_MEMORY_MB": _int("LONGRUN_JOB_MEMORY_MB", 2048),
        # Register the fault_drill report (for tests and operators' fire drills).
        "LONGRUN_FAULT_DRILLS": os.environ.get("LONGRUN_FAULT_DRILLS") == "1",
        # Backpressure per owner (0 disables a limit).
        "LONGRUN_MAX_WAITING_PER_OWNER": _int("LONGRUN_MAX_WAITING_PER_OWNER", 1000),
        # Fair dispatch: jobs of one owner in flight at once; how often the clock dispatches (safety net).
        "LONGRUN_MAX_RUNNING_PER_OWNER": _int("LONGRUN_MAX_RUNNING_PER_OWNER", 2),
        "LONGRUN_DISPATCH_SECONDS": _float("LONGRUN_DISPATCH_SECONDS", 1.0),
        # High enough to queue a real batch in a minute or two; a runaway client still meets a wall.
        "LONGRUN_MAX_JOBS_PER_MINUTE": _int("LONGRUN_MAX_JOBS_PER_MINUTE", 600),
        # Retention of finished jobs (hours), like Hangfire: succeeded go soon, failed stay longer.
        "LONGRUN_KEEP_SUCCEEDED_HOURS": _float("LONGRUN_KEEP_SUCCEEDED_HOURS", 24),
        "LONGRUN_KEEP_CANCELLED_HOURS": _float("LONGRUN_KEEP_CANCELLED_HOURS", 72),
        "LONGRUN_KEEP_FAILED_HOURS": _float("LONGRUN_KEEP_FAILED_HOURS", 24 * 7),
        "LONGRUN_PURGE_SECONDS": _float("LONGRUN_PURGE_SECONDS", 3600),
        # Jobs per purge transaction (each well under a second), and how long one clock run may purge
        # before it lets the other duties run (it comes back at once while expired jobs are left).
        "LONGRUN_PURGE_BATCH": _int("LONGRUN_PURGE_BATCH", 500),
        "LONGRUN_PURGE_BUDGET_SECONDS": _float("LONGRUN_PURGE_BUDGET_SECONDS", 5),
        # Share of the time the purge spends in batches; it rests the remainder, so live requests keep the CPU.
        "LONGRUN_PURGE_DUTY_CYCLE": _float("LONGRUN_PURGE_DUTY_CYCLE", 0.25),
        # Schedules: how often the clock fires due schedules and enqueues due jobs (seconds); how far ahead
        # run_at may be (days) and how far in the past it may be (seconds, clock skew); the shortest interval
        # a cron may have (seconds); schedules per owner; how late a slot may fire before it counts as missed.
        "LONGRUN_SCHEDULE_SECONDS": _float("LONGRUN_SCHEDULE_SECONDS", 0.5),
        "LONGRUN_RUN_AT_HORIZON_DAYS": _float("LONGRUN_RUN_AT_HORIZON_DAYS", 365),
        "LONGRUN_RUN_AT_TOLERANCE_SECONDS": _float("LONGRUN_RUN_AT_TOLERANCE_SECONDS", 60),
        "LONGRUN_SCHEDULE_MIN_INTERVAL_SECONDS": _int("LONGRUN_SCHEDULE_MIN_INTERVAL_SECONDS", 60),
        "LONGRUN_MAX_SCHEDULES_PER_OWNER": _int("LONGRUN_MAX_SCHEDULES_PER_OWNER", 100),
        "LONGRUN_MISFIRE_GRACE_SECONDS": _float("LONGRUN_MISFIRE_GRACE_SECONDS", 60),
        # Webhooks: how often the clock sends due deliveries (seconds); the first retry's delay (it doubles
        # each time, up to an hour) and how long a delivery keeps trying (hours); one attempt's timeout; endpoints
        # per owner; whether endpoints may be on private, loopback or link-local addresses (tests, private nets).
        "LONGRUN_WEBHOOK_SECONDS": _float("LONGRUN_WEBHOOK_SECONDS", 0.5),
        "LONGRUN_WEBHOOK_RETRY_SECONDS": _float("LONGRUN_WEBHOOK_RETRY_SECONDS", 10),
        "LONGRUN_WEBHOOK_RETRY_HOURS": _float("LONGRUN_WEBHOOK_RETRY_HOURS", 24),
        "LONGRUN_WEBHOOK_TIMEOUT_SECONDS": _float("LONGRUN_WEBHOOK_TIMEOUT_SECONDS", 5),
        "LONGRUN_MAX_WEBHOOKS_PER_OWNER": _int("LONGRUN_MAX_WEBHOOKS_PER_OWNER", 10),
        "LONGRUN_WEBHOOK_ALLOW_PRIVATE": os.environ.get("LONGRUN_WEBHOOK_ALLOW_PRIVATE") == "1",
        # E-mail alerts: smtp://[user:password@]host[:port] (smtp+starttls://, smtps:// for TLS); off when unset.
        "SMTP_URL": os.environ.get("SMTP_URL", ""),
        "SMTP_FROM": os.environ.get("SMTP_FROM", "longrun@localhost"),
        # Where users reach this deployment (https://reports.example.com): absolute links in webhook payloads.
        "LONGRUN_PUBLIC_URL": os.environ.get("LONGRUN_PUBLIC_URL", "").rstrip("/"),
        # Link from a job to its trace, e.g. http://localhost:16686/trace/{trace_id}
        "LONGRUN_TRACE_URL_TEMPLATE": os.environ.get("LONGRUN_TRACE_URL_TEMPLATE", ""),
        # /metrics without a credential from anywhere (for a scraper on a private network).
        "LONGRUN_METRICS_PUBLIC": os.environ.get("LONGRUN_METRICS_PUBLIC") == "1",
        # Sockets one web process holds before refusing more with 503 (gunicorn.conf.py sets it from threads).
        "LONGRUN_MAX_SOCKETS_PER_PROCESS": _int("LONGRUN_MAX_SOCKETS_PER_PROCESS", 1000),
        # Extra origins allowed to open /notifications (comma-separated); same-origin always is.
        "LONGRUN_ALLOWED_ORIGINS": os.environ.get("LONGRUN_ALLOWED_ORIGINS", ""),
    }
    if overrides:
        cfg.update(overrides)
    validate_config(cfg)
    return cfg


def validate_config(cfg: dict) -> None:
    """Fail loudly on settings that would lose jobs or leak sessions."""
    if not cfg.get("SECRET_KEY"):
        if cfg["LONGRUN_ENV"] == "production":
            raise ConfigError(
                "SECRET_KEY is not set. Production refuses to start without it: "
                "set SECRET_KEY to a long random string (or LONGRUN_ENV=development for local use)."
            )
        cfg["SECRET_KEY"] = "dev-only-insecure-key"
    soft, hard, vis = cfg["LONGRUN_SOFT_TIME_LIMIT"], cfg["LONGRUN_HARD_TIME_LIMIT"], cfg["LONGRUN_VISIBILITY_TIMEOUT"]
    # A task that outlives the broker's visibility timeout is delivered twice (celery #5935).
    if not soft < hard < vis:
        raise ConfigError(
            f"time limits must satisfy soft < hard < visibility timeout, got {soft} / {hard} / {vis}"
        )
    if cfg["LONGRUN_V1_SECONDS"] > cfg["LONGRUN_V1_MAX_SECONDS"]:
        raise ConfigError("LONGRUN_V1_SECONDS (the default) must not exceed LONGRUN_V1_MAX_SECONDS")
    cfg["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(cfg["SQLALCHEMY_DATABASE_URI"])
    local_role = cfg.get("LONGRUN_DASHBOARD_LOCAL_ROLE") or ("none" if cfg["LONGRUN_ENV"] == "production" else "operator")
    if local_role not in LOCAL_ROLES:
        raise ConfigError(f"LONGRUN_DASHBOARD_LOCAL_ROLE must be one of {', '.join(LOCAL_ROLES)}, got {local_role!r}")
    cfg["LONGRUN_DASHBOARD_LOCAL_ROLE"] = local_role
    if not cfg.get("LONGRUN_INSTANCE"):
        cfg["LONGRUN_INSTANCE"] = default_instance(cfg["SQLALCHEMY_DATABASE_URI"])
    elif not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", cfg["LONGRUN_INSTANCE"]):
        raise ConfigError("LONGRUN_INSTANCE must be 1-64 letters, digits, '.', '_' or '-', "
                          f"got {cfg['LONGRUN_INSTANCE']!r}")
