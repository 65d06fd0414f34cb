"""agentledger as a calendar backend: the slot API and the seed's claw API (seed 004).

- `POST /api/calendar/slots`, `PUT|DELETE /api/calendar/slots/{id}`: the built-in calendar's
  slots (`slot_created|changed|deleted` on `calendar.<agent_id>.*`); ids are numbered by the
  count of `slot_created` events, taken with an optimistic check on `calendar.*.slot_created` so
  two gateways never give one id twice;
- `GET /api/calendar/day?date=&agent=`: the day from the `calendar` read model, each slot with
  its wake outcome;
- `GET /calendar/sync?claw_identifier=X[&since=TOKEN]`: full or diff; the token is
  `<CALENDAR seq>@<date>`: a token from another day, or past the stream's end, answers 410 Gone;
- `GET|POST /calendar/agent/status`, `POST /monitor/server/heartbeat`.

Every write answers 2xx only once JetStream acked it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import web

from events.calendar import (
    BadDiff,
    Calendar,
    Change,
    SlotChanged,
    SlotCreated,
    SlotDeleted,
    SlotStatusReported,
    apply_patch,
    today,
)
from events.calendar.model import Day, Id, Slot, SlotStatus
from events.core import codec
from events.core.client import H_EXPECTED, H_EXPECTED_SUBJECT, prepare
from events.core.errors import Conflict, ValidationError
from events.core.policy import AGENT
from events.core.subjects import check_id, event_filter
from services.gateway.auth import caller
from services.gateway.body import json_body, json_response, require_object
from services.gateway.errors import HttpError
from services.gateway.keys import CALENDAR, EVENTS, NC, QUERIES, SETTINGS
from services.scheduler.history import CalendarLog

log = logging.getLogger(__name__)
MAX_TRIES = 5
_TOKEN = re.compile(r"^(\d+)@(\d{4}-\d{2}-\d{2})$")
_PATCHABLE = {"virtual_id", "slot_type", "estimated_duration", "scheduled_at", "status", "priority",
              "event_type", "event_data"}


class NewSlot(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    agent_id: Id
    date: Day
    scheduled_at: str
    claw_identifier: Id | None = None
    virtual_id: str | None = None
    slot_type: str = "work"
    estimated_duration: int = 0
    status: str = "not_started"
    priority: int = 0
    event_type: str | None = None
    event_data: dict[str, Any] | None = None


class StatusReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    agent_id: Id
    status: SlotStatus
    claw_identifier: Id | None = None
    slot_id: str | int | None = None
    slot_status: SlotStatus | None = None


async def calendar_ctx(app: web.Application) -> AsyncIterator[None]:
    app[CALENDAR] = CalendarLog(app[NC], app[SETTINGS].request_timeout_s)
    yield


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/calendar/slots", create_slot),
        web.put("/api/calendar/slots/{id}", change_slot),
        web.delete("/api/calendar/slots/{id}", delete_slot),
        web.get("/api/calendar/day", get_day),
        web.get("/calendar/sync", get_sync),
        web.get("/calendar/agent/status", get_agent_status),
        web.post("/calendar/agent/status", post_agent_status),
        web.post("/monitor/server/heartbeat", post_heartbeat),
    ]


def _decode(cls: type[Any], body: Any) -> Any:
    try:
        return msgspec.convert(require_object(body), cls)
    except msgspec.ValidationError as exc:
        raise codec.validation_error(exc, cls=cls) from None


def _slot_of(fields: dict[str, Any], where: str = "$") -> Slot:
    try:
        return msgspec.convert(fields, Slot)
    except msgspec.ValidationError as exc:
        raise codec.validation_error(exc, where) from None


async def create_slot(request: web.Request) -> web.Response:
    new: NewSlot = _decode(NewSlot, await json_body(request))
    fields = {k: v for k, v in msgspec.structs.asdict(new).items() if k in _PATCHABLE}
    for _ in range(MAX_TRIES):
        cal = await request.app[CALENDAR].catch_up()
        slot = _slot_of({**fields, "id": cal.created + 1})
        event = SlotCreated(date=new.date, slot=slot, claw=new.claw_identifier)
        headers = {H_EXPECTED: str(cal.created_seq), H_EXPECTED_SUBJECT: event_filter("calendar", "slot_created")}
        try:
            seq = await request.app[EVENTS].send(prepare(new.agent_id, event, headers=headers))
        except Conflict:
            continue  # another gateway numbered a slot meanwhile: read it and take the next id
        return json_response({"agent_id": new.agent_id, "date": new.date, "slot": msgspec.to_builtins(slot), "seq": seq}, 201)
    raise HttpError(409, "conflict", f"slot ids kept changing; gave up after {MAX_TRIES} tries")


async def _booked(request: web.Request) -> tuple[Calendar, str, str]:
    key = request.match_info["id"]
    cal = await request.app[CALENDAR].catch_up()
    for (agent, k) in cal.booked:
        if k == key:
            return cal, agent, key
    raise HttpError(404, "not_found", f"slot {key} is not in the calendar")


async def change_slot(request: web.Request) -> web.Response:
    patch = require_object(await json_body(request))
    for name in patch:
        if name not in _PATCHABLE:
            raise ValidationError(f"unknown or fixed field {name!r}; changeable: {', '.join(sorted(_PATCHABLE))}",
                                  field=f"$.{name}")
    cal, agent, key = await _booked(request)
    try:
        slot = apply_patch(cal.booked[(agent, key)].slot, patch, "$")
    except BadDiff as exc:
        raise ValidationError(str(exc), field="$") from None
    seq = await request.app[EVENTS].publish(agent, SlotChanged(slot_id=key, patch=patch))
    return json_response({"agent_id": agent, "slot": msgspec.to_builtins(slot), "seq": seq})


async def delete_slot(request: web.Request) -> web.Response:
    _, agent, key = await _booked(request)
    seq = await request.app[EVENTS].publish(agent, SlotDeleted(slot_id=key))
    return json_response({"agent_id": agent, "slot_id": key, "deleted": True, "seq": seq})


async def get_day(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    day = request.query.get("date") or today(datetime.now(UTC), ZoneInfo(settings.calendar_timezone))
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
        raise ValidationError(f"date {day!r} is not YYYY-MM-DD", field="$.date")
    agent = request.query.get("agent")
    if agent is not None:
        check_id(agent, "agent")
    rows = await request.app[QUERIES].query("calendar", "day", date=day, agent=agent)
    return json_response({"date": day, "slots": rows.records()})


def _diff_op(c: Change) -> dict[str, Any]:
    slot_id: Any = int(c.key) if c.key.isdigit() else c.key
    if c.op == "add":
        return {"op": "add", "agent": c.agent, "slot": msgspec.to_builtins(c.slot)}
    if c.op == "update":
        return {"op": "update", "agent": c.agent, "slotId": slot_id, "patch": c.patch}
    return {"op": "remove", "agent": c.agent, "slotId": slot_id}


async def get_sync(request: web.Request) -> web.Response:
    claw = request.query.get("claw_identifier") or request.headers.get("X-Claw-Identifier")
    if not claw:
        raise ValidationError("claw_identifier is required (query or X-Claw-Identifier)", field="$.claw_identifier")
    check_id(claw, "claw_identifier")
    day = today(datetime.now(UTC), ZoneInfo(request.app[SETTINGS].calendar_timezone))
    cal = await request.app[CALENDAR].catch_up()
    token = f"{cal.seq}@{day}"
    since = request.query.get("since")
    if since is None:
        schedules = {a: [msgspec.to_builtins(s) for s in slots] for a, slots in cal.day(day, claw).items()}
        return json_response({"full": True, "schedules": schedules, "date": day, "syncToken": token})
    m = _TOKEN.match(since)
    if m is None or m[2] != day or int(m[1]) > cal.seq:
        why = "is from another day" if m and m[2] != day else "is unknown"
        raise HttpError(410, "gone", f"sync token {since!r} {why}; sync in full (no since)")
    diff = [_diff_op(c) for c in cal.changes_since(int(m[1]), day, claw)]
    return json_response({"full": False, "diff": diff, "syncToken": token})


async def get_agent_status(request: web.Request) -> web.Response:
    agent = check_id(request.query.get("agent_id", ""), "agent_id")
    status = (await request.app[CALENDAR].catch_up()).agent_status.get(agent)
    if status is None:
        raise HttpError(404, "not_found", f"agent {agent} has reported no status to the calendar")
    return json_response({"agent_id": agent, "status": status})


async def post_agent_status(request: web.Request) -> web.Response:
    r: StatusReport = _decode(StatusReport, await json_body(request))
    who = caller(request)
    if who is not None and who.kind == AGENT and who.id != r.agent_id:
        raise HttpError(403, "forbidden", f"agent {who.id} may report only its own status, not "
                        f"{r.agent_id}'s", "$.agent_id")
    claw = r.claw_identifier or request.headers.get("X-Claw-Identifier") or None
    slot_id = None if r.slot_id is None else str(r.slot_id)
    event = SlotStatusReported(status=r.status, slot_id=slot_id, slot_status=r.slot_status,
                               claw=check_id(claw, "claw_identifier") if claw else None)
    seq = await request.app[EVENTS].publish(r.agent_id, event)
    return json_response({"ok": True, "seq": seq})


async def post_heartbeat(request: web.Request) -> web.Response:
    """Liveness only (the seed's heartbeat carries no slot data): acknowledged, not stored."""
    return json_response({})
