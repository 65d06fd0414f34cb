"""Targets through the admin API: `GET/POST /api/admin/targets`, `GET/PUT/DELETE .../{name}`, and
`POST .../{name}/test` (one message sent straight to the platform, nothing queued or recorded).

Secret fields arrive in clear only in the request body; `services.targets` encrypts them under the
keyring before they become an event, and every answer shows them masked.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from events import targets as domain
from events.core.errors import ValidationError
from events.core.subjects import check_id
from services import targets
from services.gateway.admin import admin
from services.gateway.body import json_body, json_response, require_object
from services.gateway.errors import HttpError
from services.gateway.keys import EVENTS, KEYRING, NC, SETTINGS
from services.notifier import probe


def _rule(exc: domain.TargetRuleError) -> HttpError:
    if isinstance(exc, domain.NotFound):
        return HttpError(404, "not_found", str(exc))
    return HttpError(409, "conflict", str(exc))


async def _execute(request: web.Request, name: str, make: Any) -> domain.Target:
    try:
        return await targets.execute(request.app[EVENTS], name, make)
    except domain.TargetRuleError as exc:
        raise _rule(exc) from None
    except targets.KeyringMissing as exc:
        raise HttpError(503, "no_keyring", str(exc)) from None


async def _state(request: web.Request, name: str) -> domain.Target:
    state, _ = (await targets.load(request.app[NC].jetstream(), name)).get(name, (domain.initial_state(name), 0))
    if not state.live:
        raise HttpError(404, "not_found", f"target {name} {'was removed' if state.removed else 'does not exist'}")
    return state


@admin
async def list_targets(request: web.Request) -> web.Response:
    states = await targets.load(request.app[NC].jetstream())
    keyring = request.app.get(KEYRING)
    return json_response({"targets": [targets.view(keyring, t) for n, (t, _) in sorted(states.items()) if t.live]})


@admin
async def get_target(request: web.Request) -> web.Response:
    state = await _state(request, check_id(request.match_info["name"], "name"))
    return json_response(targets.view(request.app.get(KEYRING), state))


@admin
async def create_target(request: web.Request) -> web.Response:
    body = require_object(await json_body(request))
    name = body.get("name")
    if not isinstance(name, str):
        raise ValidationError("missing required field 'name'", field="$.name")
    check_id(name, "name")
    keyring = request.app.get(KEYRING)
    try:
        cmd = targets.created(keyring, name, body)
    except targets.KeyringMissing as exc:
        raise HttpError(503, "no_keyring", str(exc)) from None
    state = await _execute(request, name, lambda _: cmd)
    return json_response(targets.view(keyring, state), status=201)


@admin
async def update_target(request: web.Request) -> web.Response:
    name = check_id(request.match_info["name"], "name")
    body = require_object(await json_body(request))
    if body.get("name", name) != name:
        raise ValidationError("the name of a target cannot change", field="$.name")
    keyring = request.app.get(KEYRING)
    state = await _execute(request, name, lambda s: targets.updated(keyring, s, body))
    return json_response(targets.view(keyring, state))


@admin
async def delete_target(request: web.Request) -> web.Response:
    name = check_id(request.match_info["name"], "name")
    await _execute(request, name, lambda _: domain.Remove(reason="admin"))
    return json_response({"name": name, "removed": True})


@admin
async def test_target(request: web.Request) -> web.Response:
    """Send one test message now; the platform's verdict, nothing recorded."""
    name = check_id(request.match_info["name"], "name")
    state = await _state(request, name)
    try:
        outcome = await probe.send_test(request.app.get(KEYRING), state, request.app[SETTINGS].report_timeout_s)
    except targets.KeyringMissing as exc:
        raise HttpError(503, "no_keyring", str(exc)) from None
    return json_response({"name": name, "ok": outcome.ok, "status_code": outcome.status_code,
                          "message_id": outcome.message_id, "error": outcome.error or None})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/admin/targets", list_targets),
        web.post("/api/admin/targets", create_target),
        web.get("/api/admin/targets/{name}", get_target),
        web.put("/api/admin/targets/{name}", update_target),
        web.delete("/api/admin/targets/{name}", delete_target),
        web.post("/api/admin/targets/{name}/test", test_target),
    ]
