"""Unbound Flask extensions, bound to an app in ``create_app``."""
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy

from app.metadata import metadata

db = SQLAlchemy(metadata=metadata)
# Batch mode lets the same migrations alter tables on SQLite.
migrate = Migrate(render_as_batch=True)
sock = Sock()
