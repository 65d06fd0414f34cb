"""The gateway app factory: the only way to build the aiohttp application.

NATS is opened in a cleanup context and reached through typed app keys; handlers hold no
globals. The connection reconnects forever, and `/health` says so while it is down.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
from aiohttp import web
from nats.aio.client import Client as NATS

from events.core.client import EventClient
from events.core.inbox import inbox_for
from projections.runtime.protocol import QueryClient
from services.gateway import (
    admin,
    agents,
    alerts,
    auth,
    calendar,
    dashboard,
    events,
    health,
    mail,
    openapi,
    queries,
    reports,
    runs,
    targets,
    tasks,
)
from services.gateway.errors import error_middleware
from services.gateway.keys import EVENTS, NC, QUERIES, SETTINGS, TELEMETRY
from services.gateway.proxy import handler as proxy
from services.gateway.tracing import tracing_middleware
from services.runtime import telemetry
from services.runtime.connection import close_quietly, redact
from services.settings import Settings

log = logging.getLogger(__name__)


class ListenError(RuntimeError):
    """The gateway cannot listen on its address (port taken, no permission)."""


def routes() -> list[web.RouteDef]:
    return [
        web.get("/health", health.get_health),
        web.get("/metrics", health.get_metrics),
        web.get("/api/openapi.json", openapi.get_openapi),
        web.post("/api/events", events.post_events),
        web.get("/api/agents", agents.list_agents),
        web.get("/api/agents/{id}", agents.get_agent),
        web.get("/api/agents/{id}/inbox", mail.get_inbox),
        web.post("/api/tasks", tasks.create_task),
        web.get("/api/tasks", tasks.list_tasks),
        web.get("/api/tasks/actionable", tasks.actionable_tasks),  # before /api/tasks/{id}
        web.get("/api/tasks/{id}", tasks.get_task),
        web.get("/api/tasks/{id}/tree", tasks.get_tree),
        web.post("/api/tasks/{id}/{verb}", tasks.task_command),
        web.post("/api/mail", mail.send_mail),
        web.post("/api/mail/{id}/read", mail.read_mail),
        web.get("/api/runs", runs.list_runs),
        web.get("/api/runs/{id}", runs.get_run),
        web.get("/api/watchdog", runs.list_decisions),
        web.get("/api/rejects", queries.get_rejects),
        web.post("/api/sql", queries.post_sql),
        *admin.routes(),
        *calendar.routes(),
        *targets.routes(),
        *reports.routes(),
        *alerts.routes(),
        *dashboard.routes(),
        web.get("/v1/models", proxy.list_models),
        web.post("/v1/chat/completions", proxy.chat_completions),
        web.post("/v1/completions", proxy.completions),
        web.post("/v1/embeddings", proxy.embeddings),
    ]


async def _nats_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]

    async def disconnected() -> None:
        if not (nc.is_closed or nc.is_draining):  # a clean shutdown is not worth a warning
            log.warning("gateway: NATS disconnected from %s", redact(settings.url))

    async def reconnected() -> None:
        log.info("gateway: NATS reconnected")

    async def error(exc: Exception) -> None:
        log.warning("gateway: NATS error: %s", exc)

    nc = NATS()
    url = settings.url_as("gateway")
    await nc.connect(
        url.split(","), name="agentledger-gateway", max_reconnect_attempts=-1, inbox_prefix=inbox_for(url),
        disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error,
    )
    app[NC] = nc
    app[EVENTS] = EventClient(nc, timeout=settings.request_timeout_s)
    app[QUERIES] = QueryClient(nc, settings.projector_name, settings.query_timeout_s + 1.0)
    yield
    await close_quietly(nc, drain=True)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[tracing_middleware, error_middleware, auth.auth_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[TELEMETRY] = telemetry.setup()
    app.cleanup_ctx.append(auth.token_ctx)
    app.cleanup_ctx.append(_nats_ctx)
    app.cleanup_ctx.append(calendar.calendar_ctx)  # after NATS: reads CALENDAR
    app.cleanup_ctx.append(admin.keys_ctx)  # after NATS: checks stored backends' key ids
    app.cleanup_ctx.append(proxy.proxy_ctx)  # after NATS: providers fold, upstream session, usage spool
    app.add_routes(routes())
    return app


async def serve(
    settings: Settings, *, reuse_port: bool = False,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the HTTP server until cancelled, then close connections cleanly. `reuse_port`: one of
    several workers on the same port (SO_REUSEPORT; the kernel spreads connections over them)."""
    auth.check_listen(settings)
    # aiohttp's keep-alive timer also runs while a request's headers are still arriving
    runner = web.AppRunner(create_app(settings), access_log=None, keepalive_timeout=settings.http_idle_timeout_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.http_host, settings.http_port, reuse_port=reuse_port or None)
        try:
            await site.start()
        except OSError as exc:
            raise ListenError(
                f"cannot listen on {settings.http_host}:{settings.http_port}: {exc.strerror}; "
                "choose another with --http-port or AGENTLEDGER_HTTP_PORT"
            ) from exc
        log.info("gateway listening on %s", settings.http_url)
        task_status.started()
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
