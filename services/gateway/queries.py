"""Read-only SQL and the rejects list, both asked of the projector over NATS."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from events.core.errors import ValidationError
from projections.runtime.protocol import parse_after
from projections.runtime.responder import REJECTS_PAGE_MAX
from services.gateway.body import (
    after_for,
    after_param,
    field,
    json_body,
    json_response,
    no_unknown,
    require_object,
)
from services.gateway.keys import QUERIES


async def post_sql(request: web.Request) -> web.Response:
    body = require_object(await json_body(request))
    no_unknown(body, {"projection", "sql", "limit", "after"})
    projection = field(body, "projection", str)
    sql = field(body, "sql", str)
    limit = field(body, "limit", int, required=False)
    if limit is not None and limit < 1:
        raise ValidationError("limit must be >= 1", field="$.limit")
    after = after_for(parse_after(field(body, "after", str, required=False), "$.after"), projection, "$.after")
    rows = await request.app[QUERIES].sql(projection, sql, limit, after)
    return json_response({"columns": rows.columns, "rows": rows.rows, "truncated": rows.truncated})


async def get_rejects(request: web.Request) -> web.Response:
    projection = request.query.get("projection") or None
    limit = _int_param(request, "limit", 100, 1, REJECTS_PAGE_MAX)
    offset = _int_param(request, "offset", 0, 0, 2**62)
    rows = await request.app[QUERIES].rejects(projection, limit, after_param(request, projection), offset=offset)
    out: dict[str, Any] = {"rejects": rows.records(), "truncated": rows.truncated}
    if rows.truncated:
        out["next_offset"] = offset + limit
    return json_response(out)


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, str(default)))
    except ValueError:
        raise ValidationError(f"{name} must be an integer", field=name) from None
    if not low <= value <= high:
        raise ValidationError(f"{name} must be between {low} and {high}", field=name)
    return value
