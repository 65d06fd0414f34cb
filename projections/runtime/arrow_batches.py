"""Arrow tables into DuckDB: how every projection writes a batch.

Rows go in as one columnar table per batch and one `INSERT ... SELECT`, never row by row:
DuckDB scans a registered Arrow table in place, which is what makes a rebuild run at stream speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa


def from_columns(columns: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )


def from_rows(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    return from_columns([[r[i] for r in rows] for i in range(len(schema))], schema)


def execute_with(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, sql: str) -> None:
    """Run `sql`, in which `name` refers to `table`, inside the caller's transaction."""
    con.register(name, table)
    try:
        con.execute(sql)
    finally:
        con.unregister(name)
