"""Commands over HTTP: a request to `cmd.tasks.<verb>` and its reply mapped onto a status code.

The tasks service decides; this module only moves the request there and the answer back:
`invalid` -> 422 naming the field, `not_found` -> 404, `conflict` -> 409, `unavailable` -> 503,
and no responder or no answer in time -> 503 (nothing was decided, or we cannot know).
"""

from __future__ import annotations

from typing import Any

import nats.errors
import orjson
from aiohttp import web

from events.core.client import trace_headers
from events.core.policy import AGENT
from events.core.streams import position_text
from events.core.subjects import command
from events.tasks import written_position
from services.gateway.auth import caller
from services.gateway.body import json_body, json_response, require_object
from services.gateway.errors import HttpError
from services.gateway.keys import NC, SETTINGS

STATUS = {"invalid": 422, "forbidden": 403, "not_found": 404, "conflict": 409, "unavailable": 503}
CODE = {"invalid": "validation"}  # one code for every 422 of the API


async def body_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object; an empty body is `{}` when `optional` (e.g. `POST .../start`)."""
    if optional and not await request.read():
        return {}
    return require_object(await json_body(request))


def with_id(fields: dict[str, Any], id_field: str, value: str) -> dict[str, Any]:
    """The command fields with the id from the URL; a different id in the body is refused."""
    given = fields.get(id_field)
    if given is not None and given != value:
        raise HttpError(422, "validation", f"{id_field} {given!r} in the body differs from {value!r} in the URL",
                        field=f"$.{id_field}")
    return {**fields, id_field: value}


async def send(request: web.Request, verb: str, fields: dict[str, Any], *, created: bool = False) -> web.Response:
    """Ask `cmd.tasks.<verb>`; 200 (201 when `created`) with the service's reply minus `ok`."""
    settings = request.app[SETTINGS]
    who = caller(request)
    # an agent acts as itself only: its own command subject, where the tasks service fills or
    # checks its actor fields (the same subject its NATS credentials allow)
    subject = command("tasks", verb) + (f".{who.id}" if who is not None and who.kind == AGENT else "")
    try:
        msg = await request.app[NC].request(
            subject, orjson.dumps(fields), timeout=settings.request_timeout_s, headers=trace_headers() or None,
        )
    except nats.errors.NoRespondersError:
        raise HttpError(503, "unavailable", f"no tasks service answers on {subject}") from None
    except nats.errors.TimeoutError:
        raise HttpError(503, "unavailable", f"the tasks service did not answer on {subject} in "
                        f"{settings.request_timeout_s:g}s; the command may or may not have been applied") from None
    except nats.errors.Error as exc:
        raise HttpError(503, "unavailable", f"cannot reach the tasks service on {subject}: {exc}") from None
    try:
        reply = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        raise HttpError(502, "bad_gateway", f"the tasks service answered {subject} with malformed JSON") from None
    if not reply.get("ok"):
        err = reply.get("error") or {}
        code = err.get("code", "unavailable")
        raise HttpError(STATUS.get(code, 502), CODE.get(code, code), err.get("message", "the tasks service refused"),
                        field=err.get("field"))
    reply.pop("ok")
    reply["after"] = position_text(written_position(verb, reply))
    return json_response(reply, 201 if created else 200)
