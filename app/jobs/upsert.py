"""The one write-time counting statement: insert rows, or add their values to the rows already there."""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def add_to_rows(session: Session, table: sa.Table, rows: list[dict], adding: Sequence[str],
                keeping: Sequence[str] = ()) -> None:
    """``INSERT … ON CONFLICT (primary key) DO UPDATE SET c = c + excluded.c`` for each column in ``adding``;
    each column in ``keeping`` takes the row's new value where it has one (not NULL), else keeps the old.

    One round trip and one compiled statement whatever the number of rows: on PostgreSQL the rows go as one
    array per column (``unnest``); SQLite, in process, takes them as an executemany.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    if session.get_bind().dialect.name == "postgresql":
        stmt = _unnest_upsert(table, columns, tuple(adding), tuple(keeping))
        session.execute(stmt, {f"c{i}": [row[name] for row in rows] for i, name in enumerate(columns)})
    else:
        session.execute(_sqlite_upsert(table, tuple(adding), tuple(keeping)), rows)


@lru_cache(maxsize=32)
def _unnest_upsert(table: sa.Table, columns: tuple[str, ...], adding: tuple[str, ...],
                   keeping: tuple[str, ...]) -> sa.TextClause:
    """``INSERT … SELECT * FROM unnest(:c0::type[], …) ON CONFLICT …``: built and compiled once per table."""
    dialect = postgresql.dialect()
    arrays = ", ".join(f"CAST(:c{i} AS {table.c[name].type.compile(dialect)}[])" for i, name in enumerate(columns))
    keys = ", ".join(c.name for c in table.primary_key.columns)
    sets = ", ".join([*(f"{name} = {table.name}.{name} + EXCLUDED.{name}" for name in adding),
                      *(f"{name} = coalesce(EXCLUDED.{name}, {table.name}.{name})" for name in keeping)])
    return sa.text(f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
                   f"ON CONFLICT ({keys}) DO UPDATE SET {sets}")


@lru_cache(maxsize=32)
def _sqlite_upsert(table: sa.Table, adding: tuple[str, ...], keeping: tuple[str, ...]) -> sa.Insert:
    """The SQLite form, rows as executemany parameters (a multi-row ``VALUES`` would compile every time)."""
    stmt = sqlite.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={**{name: table.c[name] + stmt.excluded[name] for name in adding},
              **{name: sa.func.coalesce(stmt.excluded[name], table.c[name]) for name in keeping}},
    )
