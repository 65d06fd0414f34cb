"""Tasks over HTTP: commands go to the tasks service, reads to the projector's `tasks` queries.

Commands mirror `cmd.tasks.<verb>`: `POST /api/tasks` creates, `POST /api/tasks/{id}/{verb}`
sends any other verb of `events.tasks.VERBS` (an unknown verb is 404). Reads are the named
queries of `projections.tasks`. No rule is checked here: the service and the read model own them.
"""

from __future__ import annotations

import asyncio
from typing import Any, get_args

import orjson
from aiohttp import web

from events.core.errors import ValidationError
from events.core.subjects import check_id
from events.tasks import VERBS, Status
from services.gateway.body import after_param, json_response
from services.gateway.commands import body_object, send, with_id
from services.gateway.errors import HttpError
from services.gateway.keys import QUERIES

PROJECTION = "tasks"
TASK_VERBS = frozenset(VERBS) - {"create"}
STATUSES = frozenset(get_args(Status))
MAX_LIMIT = 10_000


async def create_task(request: web.Request) -> web.Response:
    return await send(request, "create", await body_object(request), created=True)


async def task_command(request: web.Request) -> web.Response:
    task_id = check_id(request.match_info["id"], "id")
    verb = request.match_info["verb"]
    if verb not in TASK_VERBS:
        raise HttpError(404, "not_found", f"unknown task command {verb!r}; known: {', '.join(sorted(TASK_VERBS))}")
    fields = with_id(await body_object(request, optional=True), "task_id", task_id)
    return await send(request, verb, fields)


def _param(request: web.Request, name: str) -> str | None:
    return request.query.get(name) or None


async def list_tasks(request: web.Request) -> web.Response:
    status = _param(request, "status")
    if status is not None and status not in STATUSES:
        raise ValidationError(f"unknown status {status!r}; known: {', '.join(sorted(STATUSES))}", field="status")
    agent, project = _param(request, "agent"), _param(request, "project")
    rows = await request.app[QUERIES].query(
        PROJECTION, "list", after_param(request, PROJECTION), status=status, agent=agent, project=project
    )
    return json_response({"tasks": rows.records(), "truncated": rows.truncated})


async def actionable_tasks(request: web.Request) -> web.Response:
    agent = _param(request, "agent")
    if agent is not None:
        check_id(agent, "agent")
    limit: int | None = None
    if (raw := _param(request, "limit")) is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise ValidationError("limit must be an integer", field="limit") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    rows = await request.app[QUERIES].query(PROJECTION, "actionable", after_param(request, PROJECTION), agent=agent, limit=limit)
    return json_response({"tasks": rows.records()})


def _with_data(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History rows with the payload as an object rather than JSON text."""
    for r in records:
        if isinstance(r.get("data"), str):
            r["data"] = orjson.loads(r["data"])
    return records


async def get_task(request: web.Request) -> web.Response:
    task_id = check_id(request.match_info["id"], "id")
    queries, after = request.app[QUERIES], after_param(request, PROJECTION)
    task, history, attempts, outputs, comments = await asyncio.gather(*(
        queries.query(PROJECTION, name, after, id=task_id)
        for name in ("get", "history", "attempts", "outputs", "comments")
    ))
    if not task.rows:
        raise HttpError(404, "not_found", f"task {task_id} is not known: no created event seen")
    return json_response({
        "task": task.records()[0], "history": _with_data(history.records()), "attempts": attempts.records(),
        "outputs": outputs.records(), "comments": comments.records(),
    })


async def get_tree(request: web.Request) -> web.Response:
    task_id = check_id(request.match_info["id"], "id")
    rows = await request.app[QUERIES].query(PROJECTION, "tree", after_param(request, PROJECTION), id=task_id)
    if not rows.rows:
        raise HttpError(404, "not_found", f"task {task_id} is not known: no created event seen")
    return json_response({"id": task_id, "tasks": rows.records()})
