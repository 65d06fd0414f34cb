"""The responder side of the query protocol (`projections/runtime/protocol.py`) on `q.<service>`.

Only the projector process may open its DuckDB files, so every reader comes here. A named query
(fixed SQL of the projection) gets its own cursor in a worker thread, capped in rows and time
(`cursor.interrupt()`). Ad-hoc SQL never runs in this process: `projections/runtime/adhoc` runs it
in a killable worker process on the snapshot, in slots of its own, so named queries never wait
behind it. Answers are capped in bytes by the connection's max payload.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import anyio
import duckdb
import pyarrow as pa
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from events.core.client import barrier
from events.core.subjects import query as query_subject
from projections.runtime.adhoc import AdHocSql
from projections.runtime.protocol import (
    ADMIN_OPS,
    QueryError,
    QueryRequest,
    decode_request,
    encode_reply,
    error_reply,
)
from projections.runtime.store import Store

log = logging.getLogger(__name__)

REJECT_PAYLOAD_BYTES = 2048  # per row in a rejects answer, so a page of them fits a NATS message
REJECTS_PAGE_MAX = 200

_USER_ERRORS = (
    duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
    duckdb.InvalidInputException, duckdb.ConversionException, duckdb.OutOfRangeException,
    duckdb.NotImplementedException, duckdb.SyntaxException, duckdb.ConstraintException,
    duckdb.PermissionException,
)


class Host(Protocol):
    """What the responder needs from the process that owns the projections."""

    def projection(self, name: str) -> tuple[ModuleType, Store]:
        """The open projection; raises QueryError not_found / unavailable."""

    def health(self) -> dict[str, Any]: ...

    def names(self) -> list[str]: ...

    async def snapshot(self, name: str) -> Path: ...

    async def swap(self, name: str, path: str) -> dict[str, Any]: ...

    async def readable(self, name: str) -> Path:
        """A read-only snapshot of `name`, recent enough for ad-hoc SQL."""

    async def wait_for(self, name: str, after: dict[str, int], timeout_s: float) -> None:
        """Return once projection `name` has applied `after`; QueryError timeout otherwise."""


def run_select(
    store: Store, sql: str, params: dict[str, Any] | None, limit: int, timeout_s: float
) -> dict[str, Any]:
    """Run one read on a cursor of its own; at most `limit` rows, interrupted after `timeout_s`."""
    try:
        cursor = store.cursor()
    except RuntimeError as exc:
        raise QueryError("unavailable", str(exc)) from None
    timer = threading.Timer(timeout_s, cursor.interrupt)
    timer.start()
    try:
        rel = cursor.sql(sql, params=params or None)
        if rel is None:
            raise QueryError("bad_request", "the statement returns no rows")
        table = rel.limit(limit + 1).to_arrow_table()
    except duckdb.InterruptException:
        raise QueryError("timeout", f"query interrupted after {timeout_s:g}s") from None
    except _USER_ERRORS as exc:
        raise QueryError("bad_request", str(exc)) from None
    finally:
        timer.cancel()
        cursor.close()
    truncated = table.num_rows > limit
    if truncated:
        table = table.slice(0, limit)
    return {"columns": table.column_names, "rows": _rows(table), "truncated": truncated}


def _rows(table: pa.Table) -> list[list[Any]]:
    """Row lists; binary values as text (payloads are JSON), not msgspec's base64."""
    columns = []
    for column in table.columns:
        values = column.to_pylist()
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            values = [v.decode("utf-8", "replace") if v is not None else None for v in values]
        columns.append(values)
    return [list(r) for r in zip(*columns, strict=True)]


class Responder:
    def __init__(
        self, nc: NATS, host: Host, service: str, *, row_limit: int = 10_000,
        timeout_s: float = 10.0, concurrency: int = 4, adhoc: AdHocSql | None = None,
    ) -> None:
        self.nc = nc
        self.host = host
        self.subject = query_subject(service)
        self.row_limit = row_limit
        self.timeout_s = timeout_s
        self.limiter = anyio.CapacityLimiter(concurrency)  # named queries only: SQL has its own slots
        self.adhoc = adhoc or AdHocSql(timeout_s=timeout_s, max_bytes=nc.max_payload or 1024 * 1024)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:

            async def on_request(msg: Msg) -> None:
                tg.start_soon(self.handle, msg)

            await tg.start(self.adhoc.keep_spares)
            sub = await self.nc.subscribe(self.subject, cb=on_request)
            admin = await self.nc.subscribe(f"{self.subject}.admin", cb=on_request)
            await barrier(self.nc, self.timeout_s)
            log.info("answering queries on %s", self.subject)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    if not self.nc.is_closed:
                        await sub.unsubscribe()
                        await admin.unsubscribe()

    async def handle(self, msg: Msg) -> None:
        try:
            req = decode_request(msg.data)
            if req.op in ADMIN_OPS and msg.subject != f"{self.subject}.admin":
                raise QueryError(
                    "forbidden", f"op {req.op} is an admin op: ask it on {self.subject}.admin"
                )
            body = await self.answer(req)
            data = encode_reply({"ok": True, **body})
            if len(data) > self.nc.max_payload:
                data = error_reply(
                    "bad_request",
                    f"the answer is {len(data)} bytes, over the {self.nc.max_payload} bytes a NATS "
                    "message may carry; ask for fewer rows (limit) or columns",
                )
        except QueryError as exc:
            data = error_reply(exc.code, exc.message)  # type: ignore[arg-type]
        except Exception as exc:
            log.exception("query on %s failed: %r", self.subject, msg.data[:200])
            data = error_reply("internal", f"{type(exc).__name__}: {exc}")
        if msg.reply:
            await self.nc.publish(msg.reply, data)

    async def answer(self, req: QueryRequest) -> dict[str, Any]:
        if req.after and req.op in ("sql", "query", "rejects", "wait"):
            if not req.projection:
                raise QueryError("bad_request", f"op {req.op} with after needs a projection")
            await self.host.wait_for(req.projection, req.after, self.timeout_s)
        match req.op:
            case "health":
                return {"projections": self.host.health()}
            case "sql":
                self._store(req)
                if not req.sql:
                    raise QueryError("bad_request", "field sql is required for op sql")
                path = await self.host.readable(req.projection)  # type: ignore[arg-type]
                return await self.adhoc.run(path, req.sql, self._limit(req.limit))
            case "query":
                module, store = self._projection(req)
                if not req.name:
                    raise QueryError("bad_request", "field name is required for op query")
                sql = module.QUERIES.get(req.name)
                if sql is None:
                    raise QueryError("not_found", f"projection {module.NAME} has no query {req.name!r}; "
                                     f"known: {', '.join(sorted(module.QUERIES))}")
                return await self._select(store, sql, req.params, req.limit)
            case "rejects":
                return await self._rejects(req)
            case "wait":
                self._store(req)
                return {"projection": req.projection, "after": req.after}
            case "snapshot":
                self._store(req)
                path = await self.host.snapshot(req.projection)  # type: ignore[arg-type]
                return {"projection": req.projection, "path": str(path)}
            case "swap":
                self._store(req)
                if not req.path:
                    raise QueryError("bad_request", "field path is required for op swap")
                return await self.host.swap(req.projection, req.path)  # type: ignore[arg-type]
        raise QueryError("bad_request", f"unknown op {req.op!r}")

    def _projection(self, req: QueryRequest) -> tuple[ModuleType, Store]:
        if not req.projection:
            raise QueryError("bad_request", f"field projection is required for op {req.op}")
        return self.host.projection(req.projection)

    def _store(self, req: QueryRequest) -> Store:
        return self._projection(req)[1]

    def _limit(self, asked: int | None) -> int:
        if asked is not None and asked < 1:
            raise QueryError("bad_request", "limit must be at least 1")
        return min(asked or self.row_limit, self.row_limit)

    async def _select(
        self, store: Store, sql: str, params: dict[str, Any] | None, limit: int | None
    ) -> dict[str, Any]:
        n = self._limit(limit)
        return await anyio.to_thread.run_sync(
            run_select, store, sql, params, n, self.timeout_s, limiter=self.limiter
        )

    async def _rejects(self, req: QueryRequest) -> dict[str, Any]:
        """Newest first, a page of at most REJECTS_PAGE_MAX rows from `offset`, each payload cut
        to REJECT_PAYLOAD_BYTES (`payload_bytes` is its full size): many large rejects would
        otherwise make an answer no NATS message can carry."""
        names = [req.projection] if req.projection else self.host.names()
        n = min(self._limit(req.limit), REJECTS_PAGE_MAX)
        offset = int(req.params.get("offset") or 0)
        if offset < 0:
            raise QueryError("bad_request", "offset must be at least 0")
        out: dict[str, Any] = {"columns": [], "rows": [], "truncated": False}
        for name in names:
            _, store = self.host.projection(name)
            sql = (
                "SELECT $projection AS projection, stream, seq, subject, error, "
                f"payload[1:{REJECT_PAYLOAD_BYTES}] AS payload, octet_length(payload) AS payload_bytes, "
                "\"at\" FROM _rejects ORDER BY \"at\" DESC, stream, seq DESC OFFSET $offset"
            )
            part = await self._select(store, sql, {"projection": name, "offset": offset}, n)
            out["columns"] = part["columns"]
            out["rows"].extend(part["rows"])
            out["truncated"] = out["truncated"] or part["truncated"]
        if len(out["rows"]) > n:
            out["rows"], out["truncated"] = out["rows"][:n], True
        return out
