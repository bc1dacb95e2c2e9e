"""Every command the README shows works as written, in a fresh environment without any Longrun setting (no
SECRET_KEY, no LONGRUN_ENV): the ones that finish are run here, the long-running ones by the tests named below."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TEST_REDIS_URL

pytestmark = pytest.mark.slow  # runs the CLI commands as subprocesses

# Commands that keep running (or are this suite): where each is exercised.
ELSEWHERE = {
    "./scripts/start": "tests/ops/test_deploy.py and test_interrupt.py run its supervisor, scripts/devstack.py",
    "PORT=5001 ./scripts/start": "tests/ops/test_deploy.py: the taken-port message names it",
    "./scripts/test": "this suite",
    '.venv/bin/python -m pytest -m "not slow"': "the fast layer: the same tests run in this suite",
    "loc=$(curl -si -X POST localhost:5000/reports/v2 | sed -n 's/^Location: //ip' | tr -d '\\r')":
        "tests/api/test_jobs_api.py follows the 202's Location without a cookie",
    'curl "localhost:5000$loc"': "the same",
    "flask --app wsgi:app <command>": "run here as `flask --app wsgi:app --help`, with a deployment's SECRET_KEY",
    "./scripts/lock": "writes the locks; run here as --check (writing gives the same files when they match)",
    "LONGRUN_LARGE_RESULT_MB=1024 .venv/bin/python -m pytest -s tests/reports/test_large_results.py":
        "this suite runs the same test at its 96 MiB default (1 GiB takes 1.5 minutes: measured by hand)",
    # Names, not commands: their commands are the ones run here.
    "./scripts/longrun": "its commands are run here",
    "flask --app wsgi:app": "the same",
}


def readme_commands() -> set[str]:
    """Inline commands (code spans starting with ./scripts/, .venv/, flask, or a VAR=value before one) and bash
    lines."""
    text = (ROOT / "README.md").read_text()
    spans = set(re.findall(r"`((?:[A-Z_]+=\S+ )?(?:\./scripts/|\.venv/|flask )[^`]*)`", text))
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        spans |= {line.split("  #")[0].strip() for line in block.splitlines() if line.strip()}
    return spans


@pytest.fixture
def fresh_env(tmp_path) -> dict[str, str]:
    """The shell of someone who just cloned: no Longrun or Flask settings; only where the test's data goes."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LONGRUN_", "FLASK_", "OTEL_")) and k not in {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'readme.db'}"
    env["REDIS_URL"] = TEST_REDIS_URL
    return env


def run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(["/bin/bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{command!r} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


def test_every_readme_command_is_run_here_or_by_a_named_test(fresh_env):
    ran: set[str] = set()
    # Tokens: create one, see it listed, revoke it by the id the list shows.
    token = run("./scripts/longrun tokens create alice", fresh_env).stdout.strip().splitlines()[-1]
    assert token.startswith("lr_"), token
    ran.add("./scripts/longrun tokens create <owner>")
    listed = run("./scripts/longrun tokens list", fresh_env).stdout
    token_id = re.search(r"^(\d+)\s+alice\s", listed, re.M).group(1)
    ran.add("./scripts/longrun tokens list")
    run(f"./scripts/longrun tokens revoke {token_id}", fresh_env)
    ran.add("./scripts/longrun tokens revoke <id>")
    assert re.search(rf"^{token_id}\s+alice\s.*revoked", run("./scripts/longrun tokens list", fresh_env).stdout, re.M)
    for command in ("./scripts/longrun sales seed 100000", "./scripts/longrun jobs purge --dry-run",
                    "./scripts/longrun --help"):
        run(command, fresh_env)
        ran.add(command)
    # Offline it cannot check and says so (exit 2); with the advisory service it exits 0, or 1 on a finding.
    audit = subprocess.run(["/bin/bash", "-c", ".venv/bin/python scripts/audit.py --require-check"], cwd=ROOT,
                           env=fresh_env, capture_output=True, text=True, timeout=600)
    assert audit.returncode in (0, 2) and "pip-audit:" in audit.stdout, audit.stdout + audit.stderr
    assert (audit.returncode == 2) == ("NOT CHECKED" in audit.stdout), audit.stdout
    ran.add(".venv/bin/python scripts/audit.py --require-check")
    run("./scripts/lock --check", fresh_env)
    ran.add("./scripts/lock --check")
    deployment = {**fresh_env, "SECRET_KEY": "a-deployment-secret", "PATH": f"{os.path.dirname(sys.executable)}:"
                  f"{fresh_env['PATH']}"}
    assert "tokens" in run("flask --app wsgi:app --help", deployment).stdout
    shown = readme_commands()
    unaccounted = shown - ran - set(ELSEWHERE)
    assert not unaccounted, f"README commands neither run here nor covered elsewhere: {sorted(unaccounted)}"
    assert set(ELSEWHERE) <= shown and ran <= shown, "a command listed here is no longer in the README"
