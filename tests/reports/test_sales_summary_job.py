"""The sales summary runs as a real job and its CSV matches an independent SQL query."""
import csv
import io

import psycopg2

from tests.conftest import TEST_DATABASE_URL
from tests.helpers import submit, wait_for_state


def test_seed_then_summary_csv_matches_sql(app, client):
    result = app.test_cli_runner().invoke(args=["sales", "seed", "12000", "--replace", "--seed", "7"])
    assert result.exit_code == 0 and "inserted 12000 orders" in result.output
    job = submit(client, report="sales_summary", group_by="product", chunk_size=1000, date_from="2000-01-01")
    done = wait_for_state(client, job["id"], {"Succeeded", "Failed"}, timeout=60)
    assert done["state"] == "Succeeded", done["error"]
    assert done["progress"]["done"] == done["progress"]["total"] == 12000
    download = client.get(done["links"]["result"])
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == 'attachment; filename="sales-by-product.csv"'
    assert download.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert rows[0] == ["product", "orders", "units", "revenue"]
    got = {r[0]: (int(r[1]), int(r[2]), r[3]) for r in rows[1:]}

    conn = psycopg2.connect(TEST_DATABASE_URL.replace("+psycopg2", ""))
    with conn, conn.cursor() as cur:
        cur.execute("SELECT product, count(*), sum(quantity), sum(quantity * unit_price_cents) "
                    "FROM orders GROUP BY product")
        expected = {p: (n, u, f"{c / 100:.2f}") for p, n, u, c in cur.fetchall()}
        cur.execute("SELECT count(*), sum(quantity), sum(quantity * unit_price_cents) FROM orders")
        n, u, c = cur.fetchone()
    conn.close()
    assert got.pop("TOTAL") == (n, u, f"{c / 100:.2f}")
    assert got == expected


def test_progress_is_reported_per_chunk(app):
    # The same function, run in-process over the seeded table: one honest tick per chunk.
    from app.extensions import db
    from app.reports import get_report
    from app.reports.context import InlineContext

    seeded = app.test_cli_runner().invoke(args=["sales", "seed", "5000", "--replace", "--seed", "11"])
    assert seeded.exit_code == 0, seeded.output
    with app.app_context(), db.engine.connect() as conn:
        total = conn.exec_driver_sql("SELECT count(*) FROM orders").scalar_one()
        ctx = InlineContext(connection=conn)
        get_report("sales_summary").func(ctx, group_by="region", date_from=None, date_to=None, chunk_size=1000)
    done = [d for d, _, _ in ctx.progress_log]
    assert len(done) >= total // 1000 and done == sorted(done) and done[-1] == total
    assert ctx.result.filename == "sales-by-region.csv"


def test_month_grouping_and_empty_range(client):
    job = submit(client, report="sales_summary", group_by="month", date_from="1990-01-01", date_to="1990-12-31")
    done = wait_for_state(client, job["id"], {"Succeeded", "Failed"}, timeout=60)
    assert done["state"] == "Succeeded"
    body = client.get(done["links"]["result"]).get_data(as_text=True)
    assert body.splitlines() == ["month,orders,units,revenue", "TOTAL,0,0,0.00"]


def test_an_empty_orders_table_says_so_and_how_to_seed_it(app):
    # The real function on the real table, emptied inside a transaction that is rolled back afterwards.
    import pytest

    from app.extensions import db
    from app.reports import get_report
    from app.reports.context import InlineContext, ReportRefused
    from app.sales.tables import orders

    with app.app_context(), db.engine.connect() as conn:
        with conn.begin():
            conn.execute(orders.delete())
            with pytest.raises(ReportRefused, match=r"no orders.*sales seed 100000"):
                get_report("sales_summary").func(InlineContext(connection=conn), group_by="region", date_from=None,
                                                 date_to=None, chunk_size=1000)
            conn.rollback()


def test_a_refused_report_fails_at_once_with_its_reason_and_no_retry(client):
    job = submit(client, report="sales_summary", date_from="2024-02-01", date_to="2024-01-01")
    done = wait_for_state(client, job["id"], {"Succeeded", "Failed"}, timeout=60)
    assert done["state"] == "Failed" and done["attempts"] == 1, done
    assert done["error"]["type"] == "ReportRefused"
    assert "date_from (2024-02-01) is after date_to (2024-01-01)" in done["error"]["message"]
