"""Longrun: long-running reports for Flask, with live progress and real cancellation."""
from __future__ import annotations

from flask import Flask, request

from app.config import ROOT, load_config
from app.telemetry.logs import configure_logging


def create_app(overrides: dict | None = None) -> Flask:
    """Build the Flask app: config, extensions, Celery, blueprints, error handlers."""
    app = Flask(__name__, static_folder=str(ROOT / "static"), template_folder=str(ROOT / "templates"),
                instance_path=str(ROOT / "instance"))
    app.config.update(load_config(overrides))
    configure_logging()
    register_extensions(app)
    register_blueprints(app)
    register_request_hooks(app)
    register_job_hooks()
    from app.errors import register_error_handlers
    from app.security import register_security_headers

    register_error_handlers(app)
    register_security_headers(app)
    return app


def register_extensions(app: Flask) -> None:
    """Bind the database, migrations, WebSocket support and Celery."""
    from app.extensions import db, migrate, sock
    from app.jobs.celery_app import celery_init_app

    url = app.config["SQLALCHEMY_DATABASE_URI"]
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(url))
    if url.startswith("sqlite"):
        ROOT.joinpath("instance").mkdir(exist_ok=True)
    db.init_app(app)
    with app.app_context():
        if url.startswith("sqlite"):
            _tune_sqlite(db.engine)
        elif not app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_pre_ping"):
            _ping_when_idle(db.engine, app.config["LONGRUN_DB_PING_IDLE_SECONDS"])
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    # Pings keep idle sockets alive through routers and reveal dead peers; socket messages are bounded
    # like request bodies (close 1009 past LONGRUN_MAX_BODY_BYTES).
    from app.realtime.transport import server_options

    app.config.setdefault("SOCK_SERVER_OPTIONS", server_options(app.config["MAX_CONTENT_LENGTH"]))
    sock.init_app(app)
    celery_init_app(app)
    from app.jobs import tasks  # noqa: F401 - registers the shared tasks

    if app.config["LONGRUN_FAULT_DRILLS"]:
        from app.reports import drills  # noqa: F401 - registers the fault_drill report


def engine_options(url: str) -> dict:
    """Pool settings (PostgreSQL pings idle connections: ``_ping_when_idle``); SQLite waits instead of failing on
    locks."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_size": 10, "max_overflow": 10, "pool_recycle": 1800}


_RETURNED_AT = "longrun.returned_at"


def _ping_when_idle(engine, idle_seconds: float) -> None:
    """``pool_pre_ping``, but only for a connection that sat in the pool ``idle_seconds`` or more.

    A connection given back a moment ago by a busy process is alive: pinging it would add a round trip to every
    transaction (six per job). One that sat idle may have been cut by a database restart, a failover or an idle
    timeout; it is pinged, and replaced if dead, as pre-ping would. What this gives up: a connection the server
    killed in the last ``idle_seconds`` fails the one statement that finds out; SQLAlchemy then recycles the
    whole pool, so the next request reconnects.
    """
    import time

    from sqlalchemy import event, exc

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn, record) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy) -> None:
        returned = record.info.get(_RETURNED_AT)  # None: connected just now (the dict goes with the connection)
        if returned is None or time.monotonic() - returned < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection is dead: {error}") from error  # the pool reconnects


def _tune_sqlite(engine) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # WAL lets the web read while a worker writes.
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def register_blueprints(app: Flask) -> None:
    """Routes and CLI command groups."""
    from app.api import bp as api_bp
    from app.clock.cli import bp as clock_cli
    from app.dashboard.dispatch import bp as dispatch_bp
    from app.dashboard.routes import bp as dashboard_bp
    from app.ops.routes import bp as ops_bp
    from app.owners.cli import bp as tokens_cli
    from app.realtime.routes import bp as realtime_bp
    from app.retention.cli import bp as retention_cli
    from app.sales.cli import bp as sales_cli
    from app.schedules.admin import bp as schedule_admin_bp
    from app.schedules.pages import bp as schedule_pages_bp
    from app.schedules.routes import bp as schedules_bp
    from app.web import bp as web_bp
    from app.webhooks.routes import bp as webhooks_bp

    app.register_blueprint(api_bp)
    app.register_blueprint(realtime_bp)
    app.register_blueprint(web_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(dispatch_bp)
    app.register_blueprint(ops_bp)
    app.register_blueprint(schedules_bp)
    app.register_blueprint(schedule_pages_bp)
    app.register_blueprint(schedule_admin_bp)
    app.register_blueprint(webhooks_bp)
    from app.api.openapi import PARTS
    from app.schedules import openapi as schedules_openapi
    from app.webhooks import openapi as webhooks_openapi

    app.extensions[PARTS] = [schedules_openapi, webhooks_openapi]
    app.register_blueprint(retention_cli)
    app.register_blueprint(clock_cli)
    app.register_blueprint(tokens_cli)
    app.register_blueprint(sales_cli)


def register_job_hooks() -> None:
    """What else a job's end writes in its transaction: the deliveries owed to its owner's webhooks."""
    from app.jobs.lifecycle import job_finishing
    from app.webhooks.service import queue_deliveries

    job_finishing.connect(queue_deliveries, weak=False)  # connecting again (another app) changes nothing


def register_request_hooks(app: Flask) -> None:
    """Every request gets an owner and, when it could be forged, a CSRF check."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    from app.api.body import refuse_oversized_stream
    from app.owners.identity import resolve_owner
    from app.web.csrf import check_csrf, csrf_token

    # First: every later hook or view (the CSRF check reads forms) sees a body known to be within the limit.
    app.before_request(refuse_oversized_stream)

    if app.config["LONGRUN_PROXY_COUNT"]:
        # Behind a router (Heroku), the client address comes from X-Forwarded-For.
        n = app.config["LONGRUN_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    @app.before_request
    def identify_owner() -> None:
        # Static files and probes need no identity (and must not set cookies that defeat caching).
        if request.endpoint == "static" or request.blueprint == "ops":
            return
        resolve_owner()
        check_csrf()

    app.jinja_env.globals["csrf_token"] = csrf_token


