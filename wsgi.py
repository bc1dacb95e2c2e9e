"""WSGI entry point for gunicorn: ``gunicorn wsgi:app``."""
from app import create_app
from app.telemetry.tracing import init_tracing

app = create_app()
# gunicorn imports this module in each worker (no --preload), i.e. after fork.
init_tracing(app, "web")
