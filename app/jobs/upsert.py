"""The write-time bookkeeping statement: rows inserted into, or added to, several tables in one round trip."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Write:
    """Rows for one table: inserted as they are, or, with ``adding``, ``INSERT … ON CONFLICT (primary key) DO
    UPDATE SET c = c + excluded.c`` for each column in ``adding``; each column in ``keeping`` then takes the
    row's new value where it has one (not NULL), else keeps the old."""

    table: sa.Table
    rows: list[dict]
    adding: tuple[str, ...] = ()
    keeping: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[sa.Table, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """What the statement depends on (not the rows' values, nor their number)."""
        return self.table, tuple(self.rows[0]), self.adding, self.keeping


def write_all(session: Session, writes: Sequence[Write]) -> None:
    """Every write, in the order given (rows locked in that order: callers keep one order, so no lock cycle).

    On PostgreSQL they go as one statement whatever the number of rows: each table's rows as one array per column
    (``unnest``), each table's write a CTE that waits for the one before it. SQLite, in process, runs one
    executemany per table.
    """
    writes = [w for w in writes if w.rows]
    if not writes:
        return
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        params: dict[str, list] = {}
        for i, w in enumerate(writes):
            for j, name in enumerate(w.shape[1]):
                process = _bind_processor(w.table.c[name], dialect)
                values = [row[name] for row in w.rows]
                params[f"w{i}c{j}"] = [process(v) for v in values] if process else values
        session.execute(_chained(tuple(w.shape for w in writes)), params)
    else:
        for w in writes:
            session.execute(_sqlite_statement(w.table, w.adding, w.keeping), w.rows)


@lru_cache(maxsize=128)
def _bind_processor(column: sa.Column, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """How the driver takes the column's values inside an array (UUIDs as text, …): its type's bind processing,
    looked up once per column."""
    return column.type.bind_processor(dialect)


@lru_cache(maxsize=64)
def _chained(shapes: tuple[tuple[sa.Table, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...]) -> sa.TextClause:
    """``WITH w0 AS (INSERT …), w1 AS (INSERT … WHERE (SELECT count(*) FROM w0) >= 0) …``: built once per shape.

    CTEs that modify run in an unspecified order; reading the previous one's output makes each wait for it.
    """
    statements = [_insert_sql(i, *shape) + (f" WHERE (SELECT count(*) FROM w{i - 1}) >= 0" if i else "")
                  + _conflict_sql(*shape) for i, shape in enumerate(shapes)]
    if len(statements) == 1:
        return sa.text(statements[0])
    ctes = ", ".join(f"w{i} AS ({sql} RETURNING 1)" for i, sql in enumerate(statements[:-1]))
    return sa.text(f"WITH {ctes} {statements[-1]}")


def _insert_sql(i: int, table: sa.Table, columns: tuple[str, ...], _adding: tuple[str, ...],
                _keeping: tuple[str, ...]) -> str:
    dialect = postgresql.dialect()
    arrays = ", ".join(f"CAST(:w{i}c{j} AS {table.c[name].type.compile(dialect)}[])" for j, name in enumerate(columns))
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) AS u"


def _conflict_sql(table: sa.Table, _columns: tuple[str, ...], adding: tuple[str, ...], keeping: tuple[str, ...]
                  ) -> str:
    if not adding:
        return ""
    keys = ", ".join(c.name for c in table.primary_key.columns)
    sets = ", ".join([*(f"{name} = {table.name}.{name} + EXCLUDED.{name}" for name in adding),
                      *(f"{name} = coalesce(EXCLUDED.{name}, {table.name}.{name})" for name in keeping)])
    return f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"


@lru_cache(maxsize=32)
def _sqlite_statement(table: sa.Table, adding: tuple[str, ...], keeping: tuple[str, ...]) -> sa.Insert:
    """The SQLite form, rows as executemany parameters (a multi-row ``VALUES`` would compile every time)."""
    stmt = sqlite.insert(table)
    if not adding:
        return stmt
    return stmt.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={**{name: table.c[name] + stmt.excluded[name] for name in adding},
              **{name: sa.func.coalesce(stmt.excluded[name], table.c[name]) for name in keeping}},
    )
