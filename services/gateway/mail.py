"""Mail between agents over HTTP: send and read through `cmd.tasks.send_mail|read_mail`,
inboxes from the projector's `tasks` projection (query `inbox`)."""

from __future__ import annotations

from aiohttp import web

from events.core.subjects import check_id
from services.gateway.body import after_param, json_response
from services.gateway.commands import body_object, send, with_id
from services.gateway.keys import QUERIES


async def send_mail(request: web.Request) -> web.Response:
    return await send(request, "send_mail", await body_object(request), created=True)


async def read_mail(request: web.Request) -> web.Response:
    message_id = check_id(request.match_info["id"], "id")
    fields = with_id(await body_object(request), "message_id", message_id)
    return await send(request, "read_mail", fields)


async def get_inbox(request: web.Request) -> web.Response:
    agent_id = check_id(request.match_info["id"], "id")
    rows = await request.app[QUERIES].query("tasks", "inbox", after_param(request, "tasks"), agent=agent_id)
    messages = rows.records()
    unread = messages[0]["unread"] if messages else 0
    unanswered = messages[0]["unanswered"] if messages else 0
    for m in messages:
        del m["unread"], m["unanswered"]
    return json_response({"agent_id": agent_id, "unread": unread, "unanswered": unanswered, "messages": messages})
