"""``flask jobs purge`` — apply the retention policy now."""
from __future__ import annotations

import click
from flask import Blueprint

from app.retention.purge import max_ages, purge

bp = Blueprint("retention", __name__, cli_group="jobs")


@bp.cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be purged, change nothing.")
def purge_command(dry_run: bool) -> None:
    """Purge finished jobs older than their retention (rolled up into daily counts first)."""
    ages = ", ".join(f"{state} after {age}" for state, age in max_ages().items())
    result = purge(dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    click.echo(f"{verb} {result.total} job(s) {dict(result.purged)} (policy: {ages})")
