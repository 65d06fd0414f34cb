"""Agents read model over HTTP, answered by the projector's named queries."""

from __future__ import annotations

from aiohttp import web

from events.core.subjects import check_id
from services.gateway.body import after_param, json_response
from services.gateway.errors import HttpError
from services.gateway.keys import QUERIES


async def list_agents(request: web.Request) -> web.Response:
    rows = await request.app[QUERIES].query("agents", "list", after_param(request, "agents"))
    return json_response({"agents": rows.records()})


async def get_agent(request: web.Request) -> web.Response:
    agent_id = check_id(request.match_info["id"], "id")
    rows = await request.app[QUERIES].query("agents", "get", after_param(request, "agents"), id=agent_id)
    if not rows.rows:
        raise HttpError(404, "not_found", f"agent {agent_id} is not known: no registration or heartbeat seen")
    return json_response(rows.records()[0])
