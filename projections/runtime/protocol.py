"""The query protocol spoken over NATS request/reply on `q.<service>`.

Only the projector opens its DuckDB files (DuckDB allows one writer process, and another process
cannot even open the file read-only), so the gateway and the CLI ask it here.

Requests (JSON objects, field `op`):
- `{"op": "sql", "projection": P, "sql": S, "limit"?: N}`       read-only SQL (SELECT only)
- `{"op": "query", "projection": P, "name": Q, "params"?: {..}}` a named query of projection P
- `{"op": "health"}`                                             per projection: healthy, error, lag
- `{"op": "rejects", "projection"?: P, "limit"?: N}`             rows of `_rejects`
- `{"op": "snapshot", "projection": P}`                          write the snapshot now
- `{"op": "swap", "projection": P, "path": F}`                   adopt a rebuilt file, live
- `{"op": "wait", "projection": P, "after": {STREAM: SEQ}}`      answer once P has applied it

`sql`, `query` and `rejects` (with a projection) take `"after": {"TASKS": 42}`: the answer waits,
bounded by the query timeout, until the projection has applied that stream position, so a read
right after a write sees the write (`timeout` when it does not get there).

Replies: `{"ok": true, "columns": [...], "rows": [[...]], "truncated": bool}` for row answers,
`{"ok": true, ...}` for the others, `{"ok": false, "error": {"code": C, "message": M}}` on error,
with C one of bad_request, not_found, timeout, unavailable, internal.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
import nats.errors
from nats.aio.client import Client as NATS

from events.core.bounds import INT64_MAX
from events.core.errors import ValidationError
from events.core.subjects import query as query_subject

Seq = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
ErrorCode = Literal["bad_request", "forbidden", "not_found", "timeout", "unavailable", "internal"]


class QueryRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    op: Literal["sql", "query", "health", "rejects", "snapshot", "swap", "wait"]
    projection: str | None = None
    sql: str | None = None
    name: str | None = None
    params: dict[str, Any] = {}
    limit: int | None = None
    path: str | None = None
    after: Annotated[dict[str, Seq], msgspec.Meta(max_length=16)] = {}


def parse_after(text: str | None, field: str = "after") -> dict[str, int]:
    """`TASKS:42` or `TASKS:42,MAIL:7` (the positions writes answer with) as `{stream: seq}`."""
    out: dict[str, int] = {}
    for part in (text or "").split(","):
        if not part:
            continue
        stream, _, seq = part.partition(":")
        if not stream or not (seq.isascii() and seq.isdigit()) or int(seq) > INT64_MAX or len(out) >= 16:
            raise ValidationError(
                f"{field} must be <stream>:<seq>[,<stream>:<seq>...] (at most 16), e.g. TASKS:42; got {text!r}",
                field=field,
            )
        out[stream] = max(out.get(stream, 0), int(seq))
    return out


class QueryError(Exception):
    """The projector answered with an error; `code` maps to an HTTP status at the gateway."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Rows(msgspec.Struct, kw_only=True):
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


def _enc_hook(value: Any) -> Any:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
_request_decoder = msgspec.json.Decoder(QueryRequest)


def encode_reply(body: dict[str, Any]) -> bytes:
    return _encoder.encode(body)


def error_reply(code: ErrorCode, message: str) -> bytes:
    return _encoder.encode({"ok": False, "error": {"code": code, "message": message}})


def decode_request(data: bytes) -> QueryRequest:
    """Raises QueryError(bad_request) naming the field when the request is malformed."""
    try:
        return _request_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise QueryError("bad_request", f"invalid query request: {exc}") from None


# Ops that change what the projector serves: asked only on `q.<service>.admin`, which the NATS
# permissions let only the admin publish to (services.runtime.nats_auth).
ADMIN_OPS = frozenset({"swap", "snapshot"})


class QueryClient:
    """Asks a projector service; raises QueryError, with code `unavailable` when nobody answers."""

    def __init__(self, nc: NATS, service: str = "projector", timeout: float = 10.0) -> None:
        self.nc = nc
        self.subject = query_subject(service)
        self.admin_subject = f"{self.subject}.admin"
        self.timeout = timeout

    async def request(self, req: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        wait = timeout or self.timeout
        subject = self.admin_subject if req.get("op") in ADMIN_OPS else self.subject
        try:
            msg = await self.nc.request(subject, msgspec.json.encode(req), timeout=wait)
        except nats.errors.NoRespondersError:
            raise QueryError("unavailable", f"no projector answers on {self.subject}") from None
        except nats.errors.TimeoutError:
            raise QueryError("timeout", f"projector on {self.subject} did not answer in {wait:.1f}s") from None
        except nats.errors.Error as exc:
            raise QueryError("unavailable", f"cannot reach projector on {self.subject}: {exc}") from None
        reply: dict[str, Any] = msgspec.json.decode(msg.data)
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise QueryError(err.get("code", "internal"), err.get("message", "projector error"))
        return reply

    async def sql(
        self, projection: str, sql: str, limit: int | None = None, after: dict[str, int] | None = None
    ) -> Rows:
        req = {"op": "sql", "projection": projection, "sql": sql, "limit": limit, "after": after or {}}
        return msgspec.convert(await self.request(req), Rows, from_attributes=False, strict=False)

    async def query(
        self, projection: str, name: str, after: dict[str, int] | None = None, **params: Any
    ) -> Rows:
        req = {"op": "query", "projection": projection, "name": name, "params": params, "after": after or {}}
        return msgspec.convert(await self.request(req), Rows, strict=False)

    async def health(self, timeout: float | None = None) -> dict[str, Any]:
        return (await self.request({"op": "health"}, timeout))["projections"]

    async def rejects(
        self, projection: str | None = None, limit: int = 100, after: dict[str, int] | None = None,
        offset: int = 0,
    ) -> Rows:
        reply = await self.request({"op": "rejects", "projection": projection, "limit": limit,
                                    "after": after or {}, "params": {"offset": offset}})
        return msgspec.convert(reply, Rows, strict=False)

    async def wait(self, projection: str, after: dict[str, int]) -> dict[str, Any]:
        """Once `projection` has applied `after` (a write's position); QueryError timeout if not."""
        return await self.request({"op": "wait", "projection": projection, "after": after})

    async def snapshot(self, projection: str) -> dict[str, Any]:
        return await self.request({"op": "snapshot", "projection": projection})

    async def swap(self, projection: str, path: str) -> dict[str, Any]:
        return await self.request({"op": "swap", "projection": projection, "path": path}, timeout=60.0)
