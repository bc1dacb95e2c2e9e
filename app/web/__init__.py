"""Server-rendered pages and htmx fragments for people using Longrun."""
from flask import Blueprint

bp = Blueprint("web", __name__)

from app.web import pages  # noqa: E402,F401 - routes register on bp
from app.web.rendering import duration, trace_url, when  # noqa: E402

bp.add_app_template_filter(duration, "duration")
bp.add_app_template_filter(when, "when")
bp.add_app_template_global(trace_url, "trace_url")
