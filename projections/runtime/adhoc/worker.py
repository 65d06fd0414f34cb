"""The process one ad-hoc SQL query runs in: `python -m projections.runtime.adhoc.worker`.

It reads one request (JSON on stdin), opens the projection's snapshot read-only under hard limits,
checks and runs the query, writes one reply (the query protocol's JSON) on stdout and exits. The
limits are DuckDB's (`memory_limit`, `threads`, no file access, no spilling, no extensions) plus
the OS's: an address-space cap (RLIMIT_AS) of what the interpreter already maps plus a margin over
DuckDB's limit, so memory DuckDB does not account for cannot grow without bound either. Time is
the parent's business: it kills this process at the timeout, whatever the query is doing. The
query runs at the lowest CPU priority, so on a busy host the API's own work goes first (the fixed
start-up, importing and opening, does not, so that a small query is not starved by a busy host).
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any

import duckdb
import msgspec

from projections.runtime.adhoc.guard import check_functions, check_select
from projections.runtime.protocol import QueryError, encode_reply, error_reply

MB = 1024 * 1024
NICENESS = 19  # the CPU goes to the service first: an analyst's query waits, the API does not
HEADROOM_MB = 512  # parse trees, result rows and Python objects outside DuckDB's buffer manager


class WorkerRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path: str
    sql: str
    limit: int
    memory_mb: int
    threads: int


def cap_address_space(memory_mb: int) -> int:
    """RLIMIT_AS = what is mapped now + twice DuckDB's limit + headroom; returns the cap in bytes.

    Taken after DuckDB opened the file: its allocator reserves about 600 MB of address space up
    front (virtual, not resident), which a cap taken before would refuse.
    """
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = mapped + (2 * memory_mb + HEADROOM_MB) * MB
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return cap


def connect(req: WorkerRequest) -> duckdb.DuckDBPyConnection:
    config: dict[str, Any] = {
        "memory_limit": f"{req.memory_mb}MB", "threads": req.threads,
        "enable_external_access": False, "temp_directory": "",
        "autoinstall_known_extensions": False, "autoload_known_extensions": False,
        "python_enable_replacements": False,
    }
    con = duckdb.connect(req.path, read_only=True, config=config)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET lock_configuration = true")
    return con


def answer(req: WorkerRequest) -> dict[str, Any]:
    try:
        con = connect(req)
    except duckdb.Error as exc:
        raise QueryError("unavailable", f"cannot open the snapshot: {exc}") from None
    cap_address_space(req.memory_mb)  # after the open: DuckDB reserves its address space there
    os.nice(NICENESS)  # the start-up ran at normal priority; what the query itself costs does not
    check_select(req.sql)
    check_functions(con, req.sql)
    rel = con.sql(req.sql)
    if rel is None:
        raise QueryError("bad_request", "the statement returns no rows")
    rows = rel.limit(req.limit + 1).fetchall()
    truncated = len(rows) > req.limit
    return {"columns": list(rel.columns), "rows": [_row(r) for r in rows[: req.limit]], "truncated": truncated}


def _row(values: tuple[Any, ...]) -> list[Any]:
    """Binary values as text (payloads are JSON), not msgspec's base64."""
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]


def reply(data: bytes) -> bytes:
    try:
        req = msgspec.json.decode(data, type=WorkerRequest)
    except msgspec.DecodeError as exc:
        return error_reply("internal", f"bad worker request: {exc}")
    try:
        return encode_reply({"ok": True, **answer(req)})
    except QueryError as exc:
        return error_reply(exc.code, exc.message)  # type: ignore[arg-type]
    except (duckdb.OutOfMemoryException, MemoryError):
        return error_reply("bad_request", f"the query needs more than its memory cap ({req.memory_mb} MB); "
                                          "aggregate more or ask for fewer rows")
    except duckdb.Error as exc:
        return error_reply("bad_request", str(exc))


def main() -> int:
    # The reply alone goes to the parent's pipe: anything a library prints goes to stderr.
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    data = reply(sys.stdin.buffer.read())
    with os.fdopen(answer_fd, "wb") as out:
        out.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
