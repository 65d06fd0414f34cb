"""`POST /api/events`: facts from HTTP clients, all validated before any is published.

A 200 means every event is acked by JetStream. One invalid event refuses the whole request with
422 and publishes nothing, so a client never has to find out which half of its batch landed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

import events.catalog  # noqa: F401  (every event and its writers, before RULES)
from events.core.client import Outgoing, PublishError, prepare_json
from events.core.errors import Forbidden, ValidationError
from events.core.policy import Principal, check
from events.core.registry import rules
from events.core.streams import position_text, positions
from events.core.subjects import parse
from services.gateway.auth import caller
from services.gateway.body import field, json_body, json_response, no_unknown, require_object
from services.gateway.errors import HttpError
from services.gateway.keys import EVENTS, SETTINGS

_ALLOWED = {"subject", "data", "msg_id"}
RULES = rules()
MAX_ERRORS = 50


def _one(item: Any, where: str) -> Outgoing:
    obj = require_object(item, where)
    no_unknown(obj, _ALLOWED, where)
    subject = field(obj, "subject", str, where)
    msg_id = field(obj, "msg_id", str, where, required=False)
    if "data" not in obj:
        raise ValidationError("missing required field 'data'", field=f"{where}.data")
    try:
        return prepare_json(subject, obj["data"], msg_id=msg_id, where=f"{where}.data")
    except ValidationError as exc:
        if exc.field == "$.subject":
            raise ValidationError(str(exc), field=f"{where}.subject") from None
        if exc.field == "$.msg_id":
            raise ValidationError(str(exc), field=f"{where}.msg_id") from None
        raise


def _check_writer(who: Principal | None, items: list[Any], single: bool) -> None:
    """403 naming the rule for the first event the caller may not write, before any validation:
    what a caller may not write is refused whatever its payload."""
    if who is None:
        return
    for i, item in enumerate(items):
        subject = item.get("subject") if isinstance(item, dict) else None
        try:
            domain, aggregate_id, event = parse(subject) if isinstance(subject, str) else (None, None, None)
        except ValidationError:
            continue  # a malformed subject is a 422 of its own, below
        if domain is None or (domain, event) not in RULES:
            continue  # an unknown event is a 422 of its own, below
        try:
            check(who, domain, aggregate_id, event, RULES)
        except Forbidden as exc:
            where = "$" if single else f"$[{i}]"
            raise HttpError(403, "forbidden", f"event {i}: {exc}; nothing was published",
                            f"{where}.subject", index=i) from None


async def post_events(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body = await json_body(request)
    items, single = (body, False) if isinstance(body, list) else ([body], True)
    if not items:
        raise ValidationError("the array of events is empty", field="$")
    if len(items) > settings.max_events_per_request:
        raise HttpError(
            413, "too_many_events",
            f"{len(items)} events in one request; at most {settings.max_events_per_request}",
        )
    _check_writer(caller(request), items, single)
    outgoing: list[Outgoing] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = "$" if single else f"$[{i}]"
        try:
            outgoing.append(_one(item, where))
        except ValidationError as exc:
            if len(errors) < MAX_ERRORS:
                errors.append({"index": i, "field": exc.field, "message": str(exc)})
    if errors:
        first = errors[0]
        raise HttpError(
            422, "validation", f"event {first['index']}: {first['message']}; nothing was published",
            first["field"], index=first["index"], errors=errors,
        )
    try:
        seqs = await request.app[EVENTS].publish_many(outgoing)
    except PublishError as exc:
        stored = [s for s in exc.seqs if s is not None]
        raise HttpError(
            503, "unavailable", f"{exc}; {len(stored)} of {len(outgoing)} were stored "
            "(retry with msg_id to avoid duplicates)", accepted=len(stored), seqs=exc.seqs,
        ) from exc
    after = position_text(positions(zip((o.subject for o in outgoing), seqs, strict=True)))
    return json_response({"accepted": len(seqs), "seqs": seqs, "after": after})
