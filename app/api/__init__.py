"""The JSON API: the seed's report endpoints and the jobs resource."""
from flask import Blueprint

bp = Blueprint("api", __name__)

from app.api import jobs, openapi, reports  # noqa: E402,F401 - routes register on bp
