"""`GET /dashboard/sse?page=<page>`: the page's data, pushed whenever the projections moved.

The gateway, not the browser, watches the projector: every tick it asks the projector's health
(checkpoints, lag, rejects) and, only when that position changed, gathers the page's view and
sends it as one `data` event whose id is the position. A client reconnecting with
`Last-Event-ID` equal to the current position is sent nothing until something changes, since
it already shows that state. Between changes an `alive` event every few seconds carries the
server's time, so the page can tell "quiet" from "cut off"; `unavailable` says the projector
does not answer. The id is the position read before the view was gathered, so it may be older
than the data it comes with, never newer: a resume at worst receives the same view again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import orjson
from aiohttp import web

from events.core.errors import ValidationError
from projections.runtime.protocol import QueryError
from services.gateway import auth
from services.gateway.dashboard.views import VIEWS, position
from services.gateway.keys import QUERIES

log = logging.getLogger(__name__)
TICK_S = 0.25
ALIVE_S = 5.0
HEALTH_TIMEOUT_S = 2.0
RETRY_MS = 1000


def frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def stream(request: web.Request) -> web.StreamResponse:
    auth.check_read(request, auth.identify(request))
    page = request.query.get("page", "fleet")
    if page not in VIEWS:
        raise ValidationError(f"unknown page {page!r}; pages: {', '.join(VIEWS)}", field="page")
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
    })
    await resp.prepare(request)
    last = request.headers.get("Last-Event-ID")
    try:
        await resp.write(f"retry: {RETRY_MS}\n\n".encode())
        await _push(request.app, resp, page, last)
    except ConnectionError:
        log.debug("dashboard: SSE client of %s left", page)
    return resp


async def _push(app: web.Application, resp: web.StreamResponse, page: str, last: str | None) -> None:
    said = 0.0
    while True:
        now = time.time()
        try:
            projections = await app[QUERIES].health(timeout=HEALTH_TIMEOUT_S)
            current = position(projections, page)
            if current != last:
                view = await VIEWS[page](app, projections)
                await resp.write(frame("data", {"page": page, "time": now, "view": view}, current))
                last, said = current, now
        except QueryError as exc:
            if now - said >= ALIVE_S:
                await resp.write(frame("unavailable", {"time": now, "message": f"projector: {exc.message}"}))
                said = now
        if now - said >= ALIVE_S:
            await resp.write(frame("alive", {"time": now}))
            said = now
        await anyio.sleep(TICK_S)
