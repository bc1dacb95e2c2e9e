"""Unbound Flask extensions, bound to an app in ``create_app``."""
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy

from app.metadata import metadata

# Objects are not re-read after every commit: writers always re-lock a job (populate_existing) before
# changing it, so reloading what a request just wrote, only to render it, would be pure overhead.
db = SQLAlchemy(metadata=metadata, session_options={"expire_on_commit": False})
# Batch mode lets the same migrations alter tables on SQLite.
migrate = Migrate(render_as_batch=True)
sock = Sock()
