"""The one write-time counting statement: insert rows, or add their values to the rows already there."""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def adding_upsert(table: sa.Table, dialect: str, rows: list[dict], adding: Sequence[str]) -> sa.Insert:
    """``INSERT … ON CONFLICT (primary key) DO UPDATE SET c = c + excluded.c`` for each column in ``adding``."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(rows)
    return stmt.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={name: table.c[name] + stmt.excluded[name] for name in adding},
    )
