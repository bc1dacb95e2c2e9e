"""Server-rendered pages and htmx fragments for people using Longrun."""
from flask import Blueprint

bp = Blueprint("web", __name__)

from app.web import pages  # noqa: E402,F401 - routes register on bp
from app.web.rendering import duration  # noqa: E402

bp.add_app_template_filter(duration, "duration")
