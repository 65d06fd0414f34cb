"""`POST /api/alertmanager`: Alertmanager's webhook (payload version 4) into alerts and notices.

Each alert is decided on its fingerprint's state (`events.alerts.decide`: deduplicated by status
and startsAt, routed by severity through `alert_routes`, limited to targets that exist). Its notice
is filed first, under a deterministic report id, then the alert event, with a deterministic msg
id; a retry after any failure therefore files nothing twice. 200 only after every event is acked;
503 otherwise, which Alertmanager retries (it drops 4xx: those are for payloads it must not resend).
With `alertmanager_token` set, the request must carry it as `Authorization: Bearer` (set in
alertmanager.yml's `http_config.authorization`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from events import alerts
from events import targets as targets_domain
from events.core import codec, reader
from events.core.errors import Conflict, Unavailable
from events.reports import AlreadyFiled
from events.reports.client import ReportClient
from services.gateway.body import json_body, json_response
from services.gateway.errors import HttpError
from services.gateway.keys import EVENTS, SETTINGS

log = logging.getLogger(__name__)
RETRIES = 5


async def post_alertmanager(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if settings.alertmanager_token and (scheme.lower() != "bearer" or not settings.alertmanager_token_ok(token.strip())):
        raise HttpError(401, "unauthorized", "the Alertmanager webhook needs Authorization: Bearer <alertmanager token>")
    try:
        hook = msgspec.convert(await json_body(request), alerts.Webhook)
    except msgspec.ValidationError as exc:
        raise codec.validation_error(exc, cls=alerts.Webhook) from None
    client = request.app[EVENTS]
    live = {n for n, (t, _) in (await reader.fold(client.js, "targets", targets_domain.initial_state,
                                                   targets_domain.evolve)).items() if t.live}
    routes = {}
    for severity, names in settings.routes().items():
        if missing := [n for n in names if n not in live]:
            log.warning("alert_routes: %s targets %s do not exist; not sent there", severity, ", ".join(missing))
        routes[severity] = [n for n in names if n in live]
    recorded, notices = 0, []
    for alert in hook.alerts:
        events = await _record(client, alert, hook.group_key, routes)
        recorded += len(events)
        notices += [e.notice for e in events if e.notice]
    return json_response({"alerts": len(hook.alerts), "recorded": recorded, "notices": notices})


async def _record(client: Any, alert: alerts.Alert, group_key: str,
                  routes: dict[str, list[str]]) -> list[alerts.AlertEvent]:
    """Decide on the fingerprint's state and append; a lost race (a second Alertmanager replica
    posting the same alert) decides again, and finds it recorded: never a 409 Alertmanager drops."""
    for attempt in range(1, RETRIES + 1):
        state, seq = (await reader.fold(client.js, "alerts", alerts.initial_state, alerts.evolve,
                                        alert.fingerprint)).get(alert.fingerprint, (alerts.initial_state(alert.fingerprint), 0))
        events = alerts.decide(alerts.Receive(alert=alert, group_key=group_key, routes=routes), state,
                               datetime.now(UTC))
        try:
            for event in events:
                if event.notice:
                    await _file_notice(client, alert.fingerprint, event)
                await client.append(alert.fingerprint, [event], expected_seq=seq,
                                    msg_ids=[f"alert:{alert.fingerprint}:{alert.status}:{alert.starts_at}"])
        except Conflict:
            if attempt == RETRIES:
                raise Unavailable(f"alert {alert.fingerprint} kept changing; Alertmanager will retry") from None
            continue
        return events
    return []  # pragma: no cover


async def _file_notice(client: Any, fingerprint: str, event: alerts.AlertEvent) -> None:
    try:
        await ReportClient(client).file_event(event.notice or "", alerts.notice(fingerprint, event))
    except AlreadyFiled:  # the same alert again with other annotations: the first notice stands
        log.info("alert %s: notice %s was filed already", fingerprint, event.notice)


def routes() -> list[web.RouteDef]:
    return [web.post("/api/alertmanager", post_alertmanager)]
