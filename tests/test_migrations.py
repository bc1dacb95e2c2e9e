"""The migrations create exactly the schema the models describe (no drift), on PostgreSQL and SQLite."""
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # runs the migrations as subprocesses


def test_models_and_migrations_agree(app):
    from flask_migrate import check

    with app.app_context():
        check()  # raises if autogenerate would produce any operation


def test_migrations_build_a_fresh_sqlite_database(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    run = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:app", "db", "upgrade"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    check = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:app", "db", "check"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "No new upgrade operations detected" in check.stdout + check.stderr
