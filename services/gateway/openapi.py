"""The OpenAPI 3.1 document of the HTTP API, generated from the msgspec types the handlers decode.

Bodies are the same types the edge validates with (events, task and mail commands), so the
document cannot drift from what the gateway accepts: a new field or bound shows up here as it
does in the decoder. Served at `GET /api/openapi.json`; the schemathesis test fuzzes a running
gateway from it. The OpenAI-compatible proxy (`/v1/*`) is not described here: OpenAI's own
document is its reference.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import msgspec
from aiohttp import web

from events import mail, providers, tasks
from events.core.bounds import ID_PATTERN
from events.core.registry import events_of
from events.core.subjects import DOMAINS
from services.gateway.admin import MAX_KEY_CHARS
from services.gateway.body import MAX_DEPTH
from services.gateway.calendar import NewSlot

Schema = dict[str, Any]
REF = "#/components/schemas/{name}"
ID: Schema = {"type": "string", "pattern": ID_PATTERN}
AFTER: Schema = {"type": "string", "pattern": r"^([A-Z_]+:[0-9]{1,18})(,[A-Z_]+:[0-9]{1,18}){0,15}$"}
JSON_OBJECT: Schema = {"type": "object"}
ERROR: Schema = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": ["string", "null"]},
    }}},
}
_ERRORS = {
    502: "the target answered with an error (the message says which)",
    400: "malformed JSON, or a request the projector refuses (SQL that is not a SELECT)",
    404: "unknown id, projection or named query", 408: "the body stopped arriving",
    401: "no or a wrong Bearer token", 403: "the caller may not write this event (the rule is named)",
    409: "refused by a rule (the message says which)", 413: "body or batch too large",
    422: "validation: the field is named in error.field",
    503: "NATS, the tasks service or the projector cannot answer now", 504: "the read timed out",
}


def _ref(name: str) -> Schema:
    return {"$ref": REF.format(name=name)}


def _object(properties: dict[str, Schema]) -> Schema:
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _param(name: str, where: str, schema: Schema, required: bool = False) -> Schema:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema}


def _op(summary: str, ok: int = 200, body: Schema | None = None, params: list[Schema] | None = None,
        answer: Schema = JSON_OBJECT, errors: tuple[int, ...] = (400, 422, 503, 504)) -> Schema:
    op: Schema = {"summary": summary, "responses": {
        str(ok): {"description": "ok", "content": {"application/json": {"schema": answer}}},
        **{str(c): {"description": _ERRORS[c], "content": {"application/json": {"schema": _ref("Error")}}}
           for c in errors},
    }}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _with(schema: Schema, id_field: str) -> Schema:
    """A command's schema plus the optional id the route takes in the body."""
    out = copy.deepcopy(schema)
    out.setdefault("properties", {})[id_field] = ID
    return out


def _edge(schema: Schema) -> Schema:
    """The edge refuses unknown fields (readers tolerate them), so the document says so."""
    if schema.get("type") == "object":
        schema["additionalProperties"] = False
    return schema


@cache
def document() -> Schema:
    events = [t for d in DOMAINS for t in events_of(d).values()]
    types = [*events, *tasks.VERBS.values(), mail.Send, mail.MarkRead, NewSlot]
    admin_types = [providers.BackendCreated, providers.BackendUpdated]
    (_, components) = msgspec.json.schema_components([*types, *admin_types], ref_template=REF)
    components = {name: _edge(s) for name, s in components.items()}
    envelopes = []
    for cls in events:
        name = f"Envelope_{cls.domain}_{cls.name}"
        components[name] = {
            "type": "object", "required": ["subject", "data"], "additionalProperties": False,
            "properties": {
                "subject": {"type": "string",
                            "pattern": f"^{cls.domain}\\.{ID_PATTERN[1:-1]}\\.{cls.name}$"},
                "data": _ref(cls.__name__),
                "msg_id": {"type": "string", "minLength": 1, "maxLength": 256},
            },
        }
        envelopes.append(_ref(name))
    components["Envelope"] = {"anyOf": envelopes}
    components["Error"] = ERROR
    after = _param("after", "query", AFTER)
    task_id, agent = _param("id", "path", ID), _param("agent", "query", ID)
    write_errors = (400, 401, 403, 404, 409, 422, 503)
    paths: Schema = {
        "/health": {"get": _op("200 when NATS and every projection are healthy", errors=(503,))},
        "/api/openapi.json": {"get": _op("this document", errors=())},
        "/api/events": {"post": _op(
            "publish one event or an array of them; 200 only after JetStream acked every one",
            body={"anyOf": [_ref("Envelope"), {"type": "array", "minItems": 1, "maxItems": 1000,
                                               "items": _ref("Envelope")}]},
            answer={"type": "object", "required": ["accepted", "seqs", "after"], "properties": {
                "accepted": {"type": "integer"}, "seqs": {"type": "array", "items": {"type": "integer"}},
                "after": {"type": "string"}}},
            errors=(400, 401, 403, 413, 422, 503),
        )},
        "/api/agents": {"get": _op("the agents read model", params=[after])},
        "/api/agents/{id}": {"get": _op("one agent", params=[task_id, after], errors=(404, 422, 503, 504))},
        "/api/agents/{id}/inbox": {"get": _op("an agent's mail", params=[task_id, after])},
        "/api/tasks": {
            "post": _op("create a task", 201, _with(components[tasks.Create.__name__], "task_id"),
                        errors=write_errors),
            "get": _op("tasks, each filter optional", params=[
                _param("status", "query", {"type": "string"}), agent,
                _param("project", "query", {"type": "string"}), after]),
        },
        "/api/tasks/actionable": {"get": _op("what an agent may claim now, best first", params=[
            agent, _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10_000}), after])},
        "/api/tasks/{id}": {"get": _op("a task, its history, attempts, outputs and comments",
                                       params=[task_id, after], errors=(404, 422, 503, 504))},
        "/api/tasks/{id}/tree": {"get": _op("the task and its subtasks", params=[task_id, after],
                                            errors=(404, 422, 503, 504))},
        **{
            f"/api/tasks/{{id}}/{verb}": {"post": _op(
                f"send cmd.tasks.{verb}", body=_with(components[cls.__name__], "task_id"), params=[task_id],
                errors=write_errors)}
            for verb, cls in tasks.VERBS.items() if verb != "create"
        },
        "/api/mail": {"post": _op("send a message", 201, _with(components["Send"], "message_id"),
                                  errors=write_errors)},
        "/api/mail/{id}/read": {"post": _op("mark a message read", body=_with(components["MarkRead"], "message_id"),
                                            params=[task_id], errors=write_errors)},
        "/api/rejects": {"get": _op("payloads the projections could not decode, newest first, paged", params=[
            _param("projection", "query", {"type": "string"}),
            _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200}),
            _param("offset", "query", {"type": "integer", "minimum": 0}), after], errors=(404, 422, 503, 504))},
        "/api/reports": {
            "post": _op("file an owner report (to the default targets unless named)", 201, JSON_OBJECT,
                        errors=write_errors),
            "get": _op("reports, newest first", params=[
                _param("status", "query", {"type": "string", "maxLength": 64}),
                _param("target", "query", ID), after], errors=(400, 422, 503, 504)),
        },
        "/api/reports/{id}": {"get": _op("a report, its deliveries and attempts", params=[task_id, after],
                                         errors=(404, 422, 503, 504))},
        "/api/reports/{id}/retry": {"post": _op(
            "admin: try the report again now (reopens an abandoned delivery)", body=_object(
                {"target": ID}), params=[task_id], errors=write_errors)},
        "/api/reports/{id}/abandon": {"post": _op(
            "admin: stop delivering the report", body=_object(
                {"target": ID, "reason": {"type": "string", "maxLength": 2000}}), params=[task_id],
            errors=write_errors)},
        "/api/runs": {"get": _op("run logs, newest first", params=[
            _param("task", "query", ID), agent,
            _param("status", "query", {"type": "string", "maxLength": 64}),
            _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}), after],
            errors=(400, 422, 503, 504))},
        "/api/runs/{id}": {"get": _op("one run with its text", params=[task_id, after],
                                      errors=(404, 422, 503, 504))},
        "/api/watchdog": {"get": _op("the watchdog's decisions, newest first", params=[
            agent, _param("task", "query", ID),
            _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}), after],
            errors=(400, 422, 503, 504))},
        "/api/alertmanager": {"post": _op("Alertmanager webhook (payload version 4)", body=JSON_OBJECT,
                                          errors=(400, 401, 422, 503))},
        "/api/calendar/slots": {"post": _op("add a slot to agentledger's own calendar (admin)", 201,
                                            _ref("NewSlot"), errors=write_errors)},
        "/api/calendar/slots/{id}": {
            "put": _op("change a slot's changeable fields (admin)", body=JSON_OBJECT, params=[task_id],
                       errors=write_errors),
            "delete": _op("remove a slot (admin)", params=[task_id], errors=write_errors),
        },
        "/api/calendar/day": {"get": _op("the day per agent with each slot's wake outcome", params=[
            _param("date", "query", {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}), agent],
            errors=(400, 422, 503, 504))},
        "/api/sql": {"post": _op("read-only SQL through the projector", body={
            "type": "object", "required": ["projection", "sql"], "additionalProperties": False,
            "properties": {"projection": {"type": "string"}, "sql": {"type": "string"},
                           "limit": {"type": "integer", "minimum": 1}, "after": AFTER}},
            errors=(400, 404, 422, 503, 504))},
    }
    paths.update(_admin(components))
    return {
        "openapi": "3.1.0",
        "info": {"title": "agentledger", "version": "1",
                 "description": f"JSON bodies nest at most {MAX_DEPTH} levels; errors are "
                                "{\"error\": {\"code\", \"message\", \"field\"?}}."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "admin": {"type": "http", "scheme": "bearer", "description": "AGENTLEDGER_ADMIN_TOKEN"}}},
    }


def _admin(components: Schema) -> Schema:
    """The admin API: bodies are the backend events, with the key in clear (it is encrypted
    before it becomes an event) and the id; 404 `disabled` while no admin token is set."""
    secret = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS}
    created, updated = (copy.deepcopy(components[c.__name__])
                        for c in (providers.BackendCreated, providers.BackendUpdated))
    for body in (created, updated):
        body["properties"].update(id=ID, api_key=secret)
    backend, guarded = _param("id", "path", ID), (400, 401, 404, 409, 422, 503, 504)
    target = _param("name", "path", ID)
    after = _param("after", "query", AFTER)
    ops = {
        "/api/admin/backends": {"get": _op("live backends, keys masked", errors=guarded),
                                "post": _op("create a backend", 201, created, errors=guarded)},
        "/api/admin/backends/{id}": {
            "get": _op("one backend", params=[backend], errors=guarded),
            "put": _op("change a backend (a new api_key replaces the key)", body=updated, params=[backend],
                       errors=guarded),
            "delete": _op("delete a backend", params=[backend], errors=guarded),
        },
        "/api/admin/pools": {"get": _op("backends per pool and state", errors=guarded)},
        "/api/admin/targets": {"get": _op("delivery targets, secrets masked", errors=guarded),
                               "post": _op("create a target (secrets encrypted before they become events)",
                                           201, JSON_OBJECT, errors=guarded)},
        "/api/admin/targets/{name}": {
            "get": _op("one target", params=[target], errors=guarded),
            "put": _op("change a target", body=JSON_OBJECT, params=[target], errors=guarded),
            "delete": _op("delete a target", params=[target], errors=guarded),
        },
        "/api/admin/targets/{name}/test": {"post": _op("send a test message to a target", params=[target],
                                                       errors=(*guarded, 502))},
        "/api/admin/stats/total": {"get": _op("usage since the start", errors=guarded, params=[after])},
        "/api/admin/stats/hourly": {"get": _op("usage per hour", errors=guarded, params=[
            _param("backend_id", "query", ID),
            _param("hours", "query", {"type": "integer", "minimum": 1, "maximum": 24 * 366}), after])},
        "/api/admin/stats/minutes": {"get": _op("requests, errors, average and p95 latency per minute",
                                                errors=guarded, params=[
            _param("minutes", "query", {"type": "integer", "minimum": 1, "maximum": 24 * 60}), after])},
        "/api/admin/stats/daily": {"get": _op("usage per day", errors=guarded, params=[
            _param("days", "query", {"type": "integer", "minimum": 1, "maximum": 3660}), after])},
        "/api/admin/stats/cooldown": {"get": _op("cooldown episodes, newest first", errors=guarded, params=[
            _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10_000}), after])},
    }
    for path in ops.values():
        for op in path.values():
            op["security"] = [{"admin": []}]
    return ops


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
