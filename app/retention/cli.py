"""``flask jobs purge`` — apply the retention policy now."""
from __future__ import annotations

import click
from flask import Blueprint

from app.retention.purge import max_ages, purge

bp = Blueprint("retention", __name__, cli_group="jobs")


@bp.cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be purged, change nothing.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Jobs per transaction (default: LONGRUN_PURGE_BATCH).")
@click.option("--budget", type=click.FloatRange(min=0), default=None,
              help="Stop starting batches after this many seconds (default: run until none is left).")
@click.option("--duty-cycle", type=click.FloatRange(min=0.01, max=1), default=None,
              help="Share of the time spent in batches, resting in between (default: LONGRUN_PURGE_DUTY_CYCLE).")
def purge_command(dry_run: bool, batch_size: int | None, budget: float | None, duty_cycle: float | None) -> None:
    """Purge finished jobs older than their retention (rolled up into daily counts first), batch by batch."""
    ages = ", ".join(f"{state} after {age}" for state, age in max_ages().items())
    result = purge(dry_run=dry_run, budget=budget, batch_size=batch_size, duty_cycle=duty_cycle)
    if dry_run:
        click.echo(f"would purge {result.total} job(s) {dict(result.purged)} (policy: {ages})")
        return
    left = "; stopped at the budget, more left" if result.more else ""
    click.echo(f"purged {result.total} job(s) {dict(result.purged)} in {result.batches} batch(es), longest "
               f"transaction {result.longest_batch * 1000:.0f} ms{left} (policy: {ages})")
