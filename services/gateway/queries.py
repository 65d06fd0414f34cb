"""Read-only SQL and the rejects list, both asked of the projector over NATS."""

from __future__ import annotations

from aiohttp import web

from events.core.errors import ValidationError
from services.gateway.body import field, json_body, json_response, no_unknown, require_object
from services.gateway.keys import QUERIES


async def post_sql(request: web.Request) -> web.Response:
    body = require_object(await json_body(request))
    no_unknown(body, {"projection", "sql", "limit"})
    projection = field(body, "projection", str)
    sql = field(body, "sql", str)
    limit = field(body, "limit", int, required=False)
    if limit is not None and limit < 1:
        raise ValidationError("limit must be >= 1", field="$.limit")
    rows = await request.app[QUERIES].sql(projection, sql, limit)
    return json_response({"columns": rows.columns, "rows": rows.rows, "truncated": rows.truncated})


async def get_rejects(request: web.Request) -> web.Response:
    projection = request.query.get("projection") or None
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise ValidationError("limit must be an integer", field="limit") from None
    if not 1 <= limit <= 10_000:
        raise ValidationError("limit must be between 1 and 10000", field="limit")
    rows = await request.app[QUERIES].rejects(projection, limit)
    return json_response({"rejects": rows.records()})
