"""The `agentledger up` supervisor: everything in one process, stopped in order.

Start: the embedded nats-server (unless an external `nats_url` is set), the streams, the projector
host, the gateway. Stop (cancellation, i.e. Ctrl-C or SIGTERM in the CLI): the gateway first so no
request arrives at a half-stopped system, then the projector so it commits its batch and closes
DuckDB, then nats-server. Each service runs in its own shielded scope so a cancellation from
outside cannot reach them all at once and spoil that order.

A service that fails or returns on its own stops everything; the error propagates to the caller.
The embedded nats-server is different: when it dies it is restarted, with backoff, on the same
port and store (`services/runtime/supervise.py`), and the services reconnect to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec

from services.runtime import children, credentials, homelock, supervise
from services.runtime.connection import connect_once, ensure_streams_at, redact
from services.runtime.files import write_atomic
from services.runtime.nats_auth import authorization_block
from services.runtime.natsd import EmbeddedNats, default_config, free_port, with_durability
from services.settings import Settings

log = logging.getLogger(__name__)
STOP_GRACE_S = 30.0
PID_FILE = "nats-server.pid"  # in the store folder: `agents add` signals a reload

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
    credentials: Path | None = None


class ServiceStopped(Exception):
    """A supervised service returned although nobody asked it to stop."""


def embedded_server(settings: Settings) -> EmbeddedNats:
    port = settings.nats_port or free_port(settings.nats_host)
    return EmbeddedNats(
        host=settings.nats_host, port=port, store_dir=settings.nats_store,
        config=server_config(settings), pid_file=settings.nats_store / PID_FILE,
    )


def server_config(settings: Settings) -> Path:
    """nats.conf (the shipped one, or `nats_conf`) with the `durability` setting applied, plus the
    users and permissions generated from the write policy, written to `<home>/nats/server.conf` (0600: it holds password hashes).

    Credentials are made on the first `up` (admin, every service, a reader); agents are added
    with `agentledger agents add`, which rewrites this file and reloads the server.
    """
    home = settings.home_path
    base = Path(settings.nats_conf) if settings.nats_conf else default_config()
    fixed = credentials.ensure(home)
    tighten(settings)
    dest = settings.nats_store / "server.conf"
    text = with_durability(base.read_text() if base else "", settings.durability) + "\n" + authorization_block(
        [*fixed.values(), *credentials.agents(home)], settings.projector_name
    )
    settings.nats_store.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, text)
    return dest


def tighten(settings: Settings) -> None:
    """Homes made before the trust boundary: the owner's alone (0700 folders, 0600 files), but
    snapshots as `snapshot_group_read` says."""
    home = settings.home_path
    for path in [home, *home.rglob("*")]:
        if path.is_symlink():
            continue
        snapshot = path.name.endswith(".snapshot.duckdb") and settings.snapshot_group_read
        mode = 0o700 if path.is_dir() else 0o640 if snapshot else 0o600
        with contextlib.suppress(OSError):
            if path.stat().st_mode & 0o777 != mode:
                os.chmod(path, mode)


def default_services(settings: Settings | None = None) -> dict[str, Service]:
    """The services `up` runs, in start order (imported late: they pull in DuckDB and aiohttp);
    the notifier unless `notifier_enabled` is false; the dispatcher when `dispatch_mode` is not
    off, the scheduler when `calendar_url` is set."""
    from services import watchdog
    from services.gateway import app as gateway
    from services.projector import service as projector
    from services.tasks import service as tasks

    services: dict[str, Service] = {
        "projector": projector.serve, "tasks": tasks.serve, "gateway": gateway.serve,
        "watchdog": watchdog.serve,
    }
    if settings is None or settings.notifier_enabled:
        from services.notifier import service as notifier

        services["notifier"] = notifier.serve
    if settings is not None and settings.dispatch_mode != "off":
        from services.dispatcher import loop as dispatcher

        services["dispatcher"] = dispatcher.serve
    if settings is not None and settings.calendar_url:
        from services.scheduler import service as scheduler

        services["scheduler"] = scheduler.serve
    return services


async def run(
    settings: Settings,
    *,
    services: dict[str, Service] | None = None,
    processes: bool = False,
    task_status: anyio.abc.TaskStatus[Running] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run everything until cancelled; `task_status.started(Running)` once all services are up.

    `processes`: each service is an `agentledger serve <name>` process of its own (what the CLI's
    `up` runs, the production topology); otherwise the services run as tasks of this process."""
    services = default_services(settings) if services is None else services
    with homelock.hold(settings.home_path, "up") as lock:
        await _run(settings, services, lock, task_status, processes)


async def _run(
    settings: Settings, services: dict[str, Service], lock: homelock.HomeLock,
    task_status: anyio.abc.TaskStatus[Running], processes: bool,
) -> None:
    server = embedded_server(settings) if settings.nats_url is None else None
    try:
        if server is not None:
            # inside the try: a cancellation while the thread starts it must still stop it
            await anyio.to_thread.run_sync(server.start)
            settings = msgspec.structs.replace(settings, nats_port=server.port)
        lock.ports(http=settings.http_port, **({"nats": server.port} if server else {}))
        nc = await connect_once(settings.url_as("admin"))
        try:
            streams = await ensure_streams_at(nc, settings)
        finally:
            await nc.close()
        settings.projections_dir.mkdir(parents=True, exist_ok=True)
        supervise_all = _supervise_processes if processes else _supervise
        await supervise_all(settings, services, server, task_status, streams)
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
                tg.start_soon(supervise.keep_running, server)
            task_status.started(_running(settings, server, streams))
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


def _running(settings: Settings, server: EmbeddedNats | None, streams: dict[str, str]) -> Running:
    return Running(
        http_url=settings.http_url,
        nats_url=redact(settings.url),
        snapshot_dir=settings.projections_dir,
        home=settings.home_path,
        embedded=server is not None,
        streams=streams,
        credentials=credentials.folder(settings.home_path) if server is not None else None,
    )


async def _supervise_processes(
    settings: Settings,
    services: dict[str, Service],
    server: EmbeddedNats | None,
    task_status: anyio.abc.TaskStatus[Running],
    streams: dict[str, str],
) -> None:
    """One `agentledger serve <name>` process per service, started in order, each ready before the
    next starts; stopped in reverse order, then nats-server (by the caller)."""
    env = children.child_env(
        msgspec.structs.replace(settings, nats_url=settings.url, home=str(settings.home_path))
    )
    kids = [children.Child(name, children.serve_argv(name), env) for name in services]
    status_file = settings.home_path / children.STATUS_FILE
    started_at = time.time()

    def changed() -> None:
        children.write_status(status_file, kids, started_at=started_at, http_url=settings.http_url,
                              nats_url=redact(settings.url), embedded=server is not None)

    try:
        async with anyio.create_task_group() as tg:
            if server is not None:
                tg.start_soon(supervise.keep_running, server)
            await tg.start(children.run_all, kids, changed)
            task_status.started(_running(settings, server, streams))
            await anyio.sleep_forever()
    finally:
        with contextlib.suppress(OSError):
            status_file.unlink()


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
