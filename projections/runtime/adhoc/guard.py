"""What ad-hoc SQL may be: SELECT statements only, without table functions that change anything.

Both checks use DuckDB's own parser (a home-made one would disagree with it at the edges), and
both run inside the worker process, since parsing is a phase an abusive query can make slow too.
The refused functions write (checkpoints, logs, sequences), switch on profiling, or run SQL given
as a string (`query`, `json_execute_serialized_sql`), which would pass the SELECT check unseen.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from projections.runtime.protocol import QueryError

REFUSED_FUNCTIONS = frozenset({
    "checkpoint", "force_checkpoint",
    "enable_logging", "disable_logging", "truncate_duckdb_logs", "write_log",
    "enable_profiling", "disable_profiling",
    "query", "query_table", "json_execute_serialized_sql",
    "add_grammar_extension", "remove_grammar_extension",
    "create_external_resource", "register_external_resource", "register_external_resource_type",
    "deregister_external_resource", "destroy_external_resource",
    "nextval", "setval", "setseed",
    "pandas_scan", "arrow_scan", "arrow_scan_dumb", "python_arrow_scan", "python_map_function",
})


def check_select(sql: str) -> None:
    """Refuse anything but SELECT statements, as DuckDB's parser classifies them."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError("bad_request", f"invalid SQL: {exc}") from None
    if not statements:
        raise QueryError("bad_request", "no SQL statement given")
    for i, stmt in enumerate(statements, 1):
        if stmt.type != duckdb.StatementType.SELECT:
            kind = str(stmt.type).rsplit(".", 1)[-1]
            raise QueryError(
                "bad_request", f"only SELECT statements are allowed; statement {i} is {kind}"
            )


def check_functions(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse a SELECT that calls a function with side effects, naming it."""
    [(serialized,)] = con.execute("SELECT json_serialize_sql($sql)", {"sql": sql}).fetchall()
    tree = json.loads(serialized)
    if tree.get("error"):
        raise QueryError("bad_request", f"invalid SQL: {tree.get('error_message', 'cannot be parsed')}")
    refused = sorted(REFUSED_FUNCTIONS.intersection(function_names(tree)))
    if refused:
        raise QueryError("bad_request", f"function {refused[0]}() is not allowed in SQL queries: "
                                        "it changes the database or runs SQL given as text")


def function_names(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("function_name")
            if isinstance(name, str):
                found.add(name.lower())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
