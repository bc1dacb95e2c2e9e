"""Sales summary: orders aggregated in id-range chunks into a CSV (real work on real data)."""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date
from typing import Any

import sqlalchemy as sa

from app.reports.context import ReportContext, ReportRefused
from app.reports.params import Param
from app.reports.registry import report
from app.sales.tables import orders

GROUPINGS = ("region", "product", "month")
NO_ORDERS = ("There are no orders to summarise: the orders table is empty. Seed demo orders with"
             " `./scripts/longrun sales seed 100000` (on a deployment: `flask --app wsgi:app sales seed 100000`).")


def _group_column(group_by: str, dialect: str) -> sa.ColumnElement[Any]:
    if group_by == "month":
        if dialect == "postgresql":
            return sa.func.to_char(orders.c.ordered_on, "YYYY-MM")
        return sa.func.strftime("%Y-%m", orders.c.ordered_on)
    return orders.c[group_by]


def _filters(date_from: date | None, date_to: date | None) -> list[sa.ColumnElement[bool]]:
    conditions = []
    if date_from is not None:
        conditions.append(orders.c.ordered_on >= date_from)
    if date_to is not None:
        conditions.append(orders.c.ordered_on <= date_to)
    return conditions


def summary_csv(group_by: str, totals: dict[str, list[int]]) -> str:
    """Render per-group ``[orders, units, revenue_cents]`` as CSV with a TOTAL row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([group_by, "orders", "units", "revenue"])
    grand = [0, 0, 0]
    for key in sorted(totals):
        n, units, cents = totals[key]
        grand = [grand[0] + n, grand[1] + units, grand[2] + cents]
        writer.writerow([key, n, units, f"{cents / 100:.2f}"])
    writer.writerow(["TOTAL", grand[0], grand[1], f"{grand[2] / 100:.2f}"])
    return out.getvalue()


@report(
    "sales_summary",
    title="Sales summary (CSV)",
    description="Totals orders, units and revenue per region, product or month over the orders table.",
    params=(
        Param("group_by", str, default="region", choices=GROUPINGS, help="How to group the totals."),
        Param("date_from", date, default=None, help="First order date to include (optional)."),
        Param("date_to", date, default=None, help="Last order date to include (optional)."),
        Param("chunk_size", int, default=20_000, minimum=100, maximum=1_000_000,
              help="Orders aggregated per database round trip."),
    ),
    # The same summary asked again within five minutes is the one already made (or being made).
    reuse_seconds=300,
)
def sales_summary(
    ctx: ReportContext, group_by: str, date_from: date | None, date_to: date | None, chunk_size: int
) -> None:
    """Aggregate the orders chunk by chunk, reporting honest progress, and write a CSV."""
    if date_from and date_to and date_from > date_to:
        raise ReportRefused(f"date_from ({date_from}) is after date_to ({date_to}): nothing to summarise")
    conn = ctx.connection
    if conn.execute(sa.select(orders.c.id).limit(1)).first() is None:
        raise ReportRefused(NO_ORDERS)
    conditions = _filters(date_from, date_to)
    total = conn.execute(sa.select(sa.func.count()).select_from(orders).where(*conditions)).scalar_one()
    lo, hi = conn.execute(sa.select(sa.func.min(orders.c.id), sa.func.max(orders.c.id))).one()
    key = _group_column(group_by, conn.dialect.name).label("key")
    query = (
        sa.select(
            key,
            sa.func.count(),
            sa.func.sum(orders.c.quantity),
            sa.func.sum(orders.c.quantity * orders.c.unit_price_cents),
        )
        .where(*conditions, orders.c.id >= sa.bindparam("lo"), orders.c.id < sa.bindparam("hi"))
        .group_by(key)
    )
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    done = 0
    start = lo or 0
    resumed = _resume_point(ctx.resume_from)
    if resumed is not None:
        start, done, saved = resumed
        totals.update(saved)
        ctx.log(f"Resuming at order id {start:,}: {done:,} of {total:,} orders were aggregated by an earlier attempt")
    ctx.progress(done, max(total, 1), f"Aggregating {total:,} orders")
    while hi is not None and start <= hi:
        for group, n, units, cents in conn.execute(query, {"lo": start, "hi": start + chunk_size}):
            acc = totals[str(group)]
            acc[0] += n
            acc[1] += int(units)
            acc[2] += int(cents)
            done += n
        start += chunk_size
        # Where the next attempt goes on from, written with the progress below: a lost worker costs one chunk.
        ctx.checkpoint({"next_id": start, "done": done, "totals": totals})
        ctx.progress(done, max(total, 1), f"Aggregated {done:,} of {total:,} orders")
    ctx.write_result(f"sales-by-{group_by}.csv", summary_csv(group_by, totals), "text/csv")


def _resume_point(saved: Any) -> tuple[int, int, dict[str, list[int]]] | None:
    """(next order id, orders done, totals so far) from an earlier attempt's checkpoint, or None to start over."""
    if not isinstance(saved, dict):
        return None
    next_id, done, totals = saved.get("next_id"), saved.get("done"), saved.get("totals")
    if not (isinstance(next_id, int) and isinstance(done, int) and isinstance(totals, dict)):
        return None
    if not all(isinstance(v, list) and len(v) == 3 and all(isinstance(x, int) for x in v) for v in totals.values()):
        return None
    return next_id, done, {str(k): list(v) for k, v in totals.items()}
