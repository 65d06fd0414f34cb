"""The `agentledger up` supervisor: everything in one process, stopped in order.

Start: the embedded nats-server (unless an external `nats_url` is set), the streams, the projector
host, the gateway. Stop (cancellation, i.e. Ctrl-C or SIGTERM in the CLI): the gateway first so no
request arrives at a half-stopped system, then the projector so it commits its batch and closes
DuckDB, then nats-server. Each service runs in its own shielded scope so a cancellation from
outside cannot reach them all at once and spoil that order.

A service that fails or returns on its own stops everything; the error propagates to the caller.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec

from services.runtime.connection import connect_once, ensure_streams_at, redact
from services.runtime.natsd import EmbeddedNats, NatsServerError, default_config, free_port
from services.settings import Settings

log = logging.getLogger(__name__)
STOP_GRACE_S = 30.0
NATS_WATCH_S = 0.5

Service = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Running:
    """What `up` tells the person who started it."""

    http_url: str
    nats_url: str
    snapshot_dir: Path
    home: Path
    embedded: bool
    streams: dict[str, str]


class ServiceStopped(Exception):
    """A supervised service returned although nobody asked it to stop."""


def embedded_server(settings: Settings) -> EmbeddedNats:
    conf = Path(settings.nats_conf) if settings.nats_conf else default_config()
    port = settings.nats_port or free_port(settings.nats_host)
    return EmbeddedNats(
        host=settings.nats_host, port=port, store_dir=settings.nats_store, config=conf
    )


def default_services(settings: Settings | None = None) -> dict[str, Service]:
    """The services `up` runs, in start order (imported late: they pull in DuckDB and aiohttp);
    the dispatcher last, and only when `dispatch_mode` is not off."""
    from services import watchdog
    from services.gateway import app as gateway
    from services.projector import service as projector
    from services.tasks import service as tasks

    services: dict[str, Service] = {
        "projector": projector.serve, "tasks": tasks.serve, "gateway": gateway.serve,
        "watchdog": watchdog.serve,
    }
    if settings is not None and settings.dispatch_mode != "off":
        from services.dispatcher import loop as dispatcher

        services["dispatcher"] = dispatcher.serve
    return services


async def run(
    settings: Settings,
    *,
    services: dict[str, Service] | None = None,
    task_status: anyio.abc.TaskStatus[Running] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run everything until cancelled; `task_status.started(Running)` once all services are up."""
    services = default_services(settings) if services is None else services
    server = embedded_server(settings) if settings.nats_url is None else None
    try:
        if server is not None:
            # inside the try: a cancellation while the thread starts it must still stop it
            await anyio.to_thread.run_sync(server.start)
            settings = msgspec.structs.replace(settings, nats_port=server.port)
        nc = await connect_once(settings.url)
        try:
            streams = await ensure_streams_at(nc, settings)
        finally:
            await nc.close()
        settings.projections_dir.mkdir(parents=True, exist_ok=True)
        await _supervise(settings, services, server, task_status, streams)
    finally:
        if server is not None and server.proc is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(server.stop)
                log.info("nats-server stopped")


async def _supervise(
    settings: Settings,
    services: dict[str, Service],
    server: EmbeddedNats | None,
    task_status: anyio.abc.TaskStatus[Running],
    streams: dict[str, str],
) -> None:
    scopes: list[tuple[str, anyio.CancelScope, anyio.Event]] = []
    async with anyio.create_task_group() as tg:
        try:
            for name, serve in services.items():
                scope, done = anyio.CancelScope(shield=True), anyio.Event()
                scopes.append((name, scope, done))
                await tg.start(_service, name, serve, settings, scope, done)
                log.info("%s started", name)
            if server is not None:
                tg.start_soon(_watch_server, server)
            task_status.started(
                Running(
                    http_url=settings.http_url,
                    nats_url=redact(settings.url),
                    snapshot_dir=settings.projections_dir,
                    home=settings.home_path,
                    embedded=server is not None,
                    streams=streams,
                )
            )
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                for name, scope, done in reversed(scopes):
                    scope.cancel()
                    with anyio.move_on_after(STOP_GRACE_S) as late:
                        await done.wait()
                    if late.cancelled_caught:
                        log.error("%s did not stop within %.0fs", name, STOP_GRACE_S)
                    else:
                        log.info("%s stopped", name)
            tg.cancel_scope.cancel()


async def _service(
    name: str,
    serve: Service,
    settings: Settings,
    scope: anyio.CancelScope,
    done: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    try:
        with scope:
            await serve(settings, task_status=task_status)
        if not scope.cancel_called:
            raise ServiceStopped(f"{name} stopped on its own")
    finally:
        done.set()


async def _watch_server(server: EmbeddedNats) -> None:
    """Stop everything when the embedded nats-server dies under us (killed, disk full)."""
    while True:
        proc = server.proc
        if proc is None or proc.poll() is not None:
            code = None if proc is None else proc.returncode
            if code is not None and code < 0:
                raise NatsServerError(
                    f"nats-server (pid {proc.pid}) was killed by {signal.Signals(-code).name}"
                )
            raise NatsServerError(f"nats-server exited with code {code}: {server._log_tail()}")
        await anyio.sleep(NATS_WATCH_S)
