"""Celery bound to the Flask app (the official Flask pattern), with settings for long jobs."""
from __future__ import annotations

from celery import Celery, Task
from celery.signals import (
    setup_logging,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from flask import Flask

from app.channels import Namespace


def celery_settings(cfg: dict) -> dict:
    """Celery configuration derived from the app config."""
    # Every key and channel Celery uses carries this deployment's prefix: two on one Redis never meet.
    transport = {"visibility_timeout": cfg["LONGRUN_VISIBILITY_TIMEOUT"], "global_keyprefix": Namespace.of(cfg).prefix}
    return {
        "broker_url": cfg["REDIS_URL"],
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        # A request must not hang on a dead broker: fail fast, the sweep re-publishes.
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        "broker_connection_timeout": 2,
        # PostgreSQL holds the job state; a result backend would be a second, divergent copy.
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": cfg["LONGRUN_SOFT_TIME_LIMIT"],
        "task_time_limit": cfg["LONGRUN_HARD_TIME_LIMIT"],
        "task_default_queue": cfg["LONGRUN_QUEUE"],
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_hijack_root_logger": False,
    }


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app whose tasks run inside a Flask app context."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_settings(app.config))
    celery_app.set_default()
    app.extensions["celery"] = celery_app

    @setup_logging.connect(weak=False)
    def use_our_logging(**_: object) -> None:
        # Connecting here stops Celery from replacing our (JSON-capable) handlers.
        from app.telemetry.logs import configure_logging

        configure_logging(force=True)

    @worker_process_init.connect(weak=False)
    def reset_after_fork(**_: object) -> None:
        # Pooled connections must not cross a fork (psycopg2 sockets would be shared).
        from app.extensions import db
        from app.telemetry.tracing import init_tracing

        with app.app_context():
            for engine in db.engines.values():
                engine.dispose(close=False)
        init_tracing(app, "worker")

    @worker_ready.connect(weak=False)
    def offer_slots(sender: object, **_: object) -> None:
        # The dispatcher hands out only as many jobs as live workers have slots: say we are here, and keep saying it.
        from app.jobs.capacity import start_announcing
        from app.telemetry.tracing import init_tracing

        # The main process dispatches too (when its slots appear): its publishes continue the jobs' traces.
        init_tracing(app, "worker")
        start_announcing(app, sender.hostname, sender.controller.concurrency)

    @worker_shutdown.connect(weak=False)
    def withdraw_slots(**_: object) -> None:
        from app.jobs.capacity import stop_announcing

        stop_announcing(app)

    @worker_process_shutdown.connect(weak=False)
    def flush_spans(**_: object) -> None:
        # A recycled pool process takes its unexported spans with it otherwise.
        from app.telemetry.tracing import flush_tracing

        flush_tracing()

    return celery_app
