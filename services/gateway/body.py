"""Request body decoding shared by every handler: orjson, size-limited, typed errors."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from events.core.errors import ValidationError
from projections import catalog
from projections.runtime.protocol import parse_after
from services.gateway.errors import HttpError
from services.gateway.keys import SETTINGS

# no payload of ours nests deeper; orjson writes at most 254 levels, so a deeper body would be
# accepted here and then fail (500) where it is encoded again for NATS
MAX_DEPTH = 64


async def json_body(request: web.Request) -> Any:
    """The body as JSON: 400 when it is not JSON or nests too deep, 408 when it stops arriving."""
    try:
        async with asyncio.timeout(request.app[SETTINGS].http_idle_timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise HttpError(408, "timeout", "the request body did not arrive in time") from None
    if not raw:
        raise HttpError(400, "bad_json", "request body is empty; a JSON document is expected")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "bad_json", f"malformed JSON: {exc}") from None
    if _too_deep(value):
        raise HttpError(400, "bad_json", f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _too_deep(value: Any) -> bool:
    level: list[Any] = [value]
    for _ in range(MAX_DEPTH):
        level = [v for c in level if isinstance(c, (dict, list))
                 for v in (c.values() if isinstance(c, dict) else c) if isinstance(v, (dict, list))]
        if not level:
            return False
    return True


def after_param(request: web.Request, projection: str | None) -> dict[str, int] | None:
    """`?after=TASKS:42`: the stream position the read of `projection` must include (what a
    write answered); a stream the projection does not read is refused here, naming `after`."""
    return after_for(parse_after(request.query.get("after")), projection, "after")


def after_for(after: dict[str, int], projection: str | None, field: str) -> dict[str, int] | None:
    if not after:
        return None
    if projection is None:
        raise ValidationError(f"{field} needs a projection to wait for", field=field)
    try:
        reads = [stream for stream, _ in catalog.get(projection).SOURCES]
    except catalog.UnknownProjection:
        return after  # the projector answers not_found, naming the projections it has
    if unknown := sorted(set(after) - set(reads)):
        raise ValidationError(f"projection {projection} does not read {', '.join(unknown)}; it reads "
                              f"{', '.join(reads)}", field=field)
    return after


def require_object(value: Any, where: str = "$") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"expected a JSON object at {where}", field=where)
    return value


def field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str = "$", *, required: bool = True) -> Any:
    if name not in obj or obj[name] is None:
        if required:
            raise ValidationError(f"missing required field {name!r}", field=f"{where}.{name}")
        return None
    value = obj[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ValidationError(
            f"{where}.{name} must be {expected}, got {type(value).__name__}", field=f"{where}.{name}"
        )
    return value


def no_unknown(obj: dict[str, Any], allowed: set[str], where: str = "$") -> None:
    for key in obj:
        if key not in allowed:
            raise ValidationError(
                f"unknown field {key!r}; allowed: {', '.join(sorted(allowed))}", field=f"{where}.{key}"
            )


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
