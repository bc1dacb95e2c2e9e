"""``flask sales seed N`` — fill the orders table with reproducible demo rows."""
from __future__ import annotations

import random
from datetime import date, timedelta

import click
from flask import Blueprint

from app.extensions import db
from app.sales.tables import PRODUCTS, REGIONS, orders

bp = Blueprint("sales", __name__, cli_group="sales")

_BATCH = 5000


def make_rows(rng: random.Random, count: int, start: date, days: int) -> list[dict]:
    """``count`` random orders spread over ``days`` days from ``start``."""
    return [
        {
            "ordered_on": start + timedelta(days=rng.randrange(days)),
            "region": rng.choice(REGIONS),
            "product": rng.choice(PRODUCTS),
            "quantity": rng.randint(1, 20),
            "unit_price_cents": rng.randint(199, 99_999),
        }
        for _ in range(count)
    ]


@bp.cli.command("seed")
@click.argument("count", type=click.IntRange(1, 50_000_000))
@click.option("--seed", "seed", default=42, show_default=True, help="Random seed (same seed, same rows).")
@click.option("--replace/--append", default=False, help="Delete existing orders first.")
def seed_orders(count: int, seed: int, replace: bool) -> None:
    """Insert COUNT demo orders over the last two years."""
    rng = random.Random(seed)
    start = date.today() - timedelta(days=730)
    with db.engine.begin() as conn:
        if replace:
            conn.execute(orders.delete())
    with click.progressbar(length=count, label="Seeding orders") as bar:
        left = count
        while left:
            n = min(_BATCH, left)
            # One transaction per batch: progress is real and a crash keeps what was done.
            with db.engine.begin() as conn:
                conn.execute(orders.insert(), make_rows(rng, n, start, 730))
            left -= n
            bar.update(n)
    click.echo(f"inserted {count} orders")
