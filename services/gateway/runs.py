"""Run logs and watchdog decisions over HTTP, answered by the projector's named queries."""

from __future__ import annotations

from aiohttp import web

from events.core.errors import ValidationError
from events.core.subjects import check_id
from services.gateway.body import json_response
from services.gateway.errors import HttpError
from services.gateway.keys import QUERIES

STATUSES = ("running", "following", "success", "failed", "skipped")
MAX_LIMIT = 1000


def _id_param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name) or None
    return None if value is None else check_id(value, name)


def _limit(request: web.Request, default: int = 100) -> int:
    raw = request.query.get("limit")
    try:
        limit = default if raw is None else int(raw)
    except ValueError:
        raise ValidationError("limit must be an integer", field="limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


async def list_runs(request: web.Request) -> web.Response:
    """`GET /api/runs?task=&agent=&status=&limit=`, newest first, without the log text."""
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationError(f"unknown status {status!r}; known: {', '.join(STATUSES)}", field="status")
    rows = await request.app[QUERIES].query(
        "runs", "list", task=_id_param(request, "task"), agent=_id_param(request, "agent"),
        status=status, limit=_limit(request),
    )
    return json_response({"runs": rows.records(), "truncated": rows.truncated})


async def get_run(request: web.Request) -> web.Response:
    run_id = check_id(request.match_info["id"], "id")
    rows = await request.app[QUERIES].query("runs", "get", id=run_id)
    if not rows.rows:
        raise HttpError(404, "not_found", f"run {run_id} is not known")
    return json_response(rows.records()[0])


async def list_decisions(request: web.Request) -> web.Response:
    """`GET /api/watchdog?agent=&task=&limit=`: the watchdog's decisions, newest first."""
    rows = await request.app[QUERIES].query(
        "watchdog", "list", agent=_id_param(request, "agent"), task=_id_param(request, "task"),
        limit=_limit(request),
    )
    return json_response({"decisions": rows.records()})
