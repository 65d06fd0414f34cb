"""The process one ad-hoc SQL query runs in: `python -m projections.runtime.adhoc.worker`.

It reads one request (JSON on stdin), opens the projection's snapshot read-only under hard limits,
checks and runs the query, writes one reply (the query protocol's JSON) on stdout and exits. The
limits are DuckDB's (`memory_limit`, `threads`, no file access, no spilling, no extensions) plus
the OS's: an address-space cap (RLIMIT_AS) of what the interpreter already maps plus a margin over
DuckDB's limit, so memory DuckDB does not account for cannot grow without bound either. Time is
the parent's business: it kills this process at the timeout, whatever the query is doing. The
whole worker, start-up included, runs at the lowest CPU priority (SCHED_IDLE, set by `launcher.py`
before it loads anything, and here when the worker was started without it): on a host whose services are busy an analyst's query waits, up to its
timeout, and the API does not.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
import sys
import time
from typing import Any

import duckdb
import msgspec

from projections.runtime.adhoc.guard import check_functions, check_select
from projections.runtime.adhoc.launcher import is_lowest, lowest_priority
from projections.runtime.protocol import QueryError, encode_reply, error_reply

MB = 1024 * 1024
PR_SET_PDEATHSIG = 1
PARENT_ENV = "SQL_WORKER_PARENT"  # the pid that started it, set by the runner
HEADROOM_MB = 512  # parse trees, result rows and Python objects outside DuckDB's buffer manager


class WorkerRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path: str
    sql: str
    limit: int
    memory_mb: int
    threads: int
    timeout_s: float


def die_with_parent() -> None:
    """SIGKILL when the projector dies (Linux): the worker is in a session of its own, so a signal
    to the service's process group no longer reaches it, and a query must not outlive the service
    that would have killed it at its timeout."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the CPU limit below still ends it
        return
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):  # it died before the line above
        os._exit(1)


def cap_cpu(timeout_s: float, threads: int) -> None:
    """RLIMIT_CPU a little over what the query may use before its parent kills it: a backstop for
    a parent that can no longer kill it."""
    limit = math.ceil(timeout_s * threads) + 2 + int(time.process_time())
    resource.setrlimit(resource.RLIMIT_CPU, (limit, limit))


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
    cap_cpu(req.timeout_s, req.threads)
    try:
        con = connect(req)
    except duckdb.Error as exc:
        raise QueryError("unavailable", f"cannot open the snapshot: {exc}") from None
    cap_address_space(req.memory_mb)  # after the open: DuckDB reserves its address space there
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
    die_with_parent()
    if not is_lowest():
        lowest_priority()  # started by someone other than the runner
    # The reply alone goes to the parent's pipe: anything a library prints goes to stderr.
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    data = reply(sys.stdin.buffer.read())
    with os.fdopen(answer_fd, "wb") as out:
        out.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
