"""The orders table, as plain SQLAlchemy Core so reports can use it without Flask."""
import sqlalchemy as sa

from app.metadata import metadata

REGIONS = ("North", "South", "East", "West", "Central")
PRODUCTS = ("Widget", "Gadget", "Gizmo", "Doohickey", "Sprocket", "Flange")

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ordered_on", sa.Date, nullable=False, index=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("product", sa.String(32), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price_cents", sa.Integer, nullable=False),
)
