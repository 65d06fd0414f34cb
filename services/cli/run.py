"""`agentledger up` and `agentledger serve`: the long-running commands, stopped by a signal.

Every CLI command takes the parsed arguments and Settings and returns an exit code.

Only this layer and `services.cli.output` print. Errors are raised, not printed: `services.cli.main.main` turns
the expected ones into one line and an exit code.
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from functools import partial
from typing import Any

import anyio
import anyio.abc

from services.cli import output as show
from services.runtime import homelock, loop
from services.runtime.connection import connect_once, redact
from services.settings import Settings

log = logging.getLogger(__name__)


class UsageError(Exception):
    """The command line itself is wrong (exit code 2); the message says how."""


@asynccontextmanager
async def until_signalled() -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group cancelled by the first SIGINT/SIGTERM; later signals are ignored while it stops."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for signum in signals:
                    log.info("%s received; stopping", signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

            tg.start_soon(watch)
            yield tg


# --- long-running --------------------------------------------------------------------------


async def up(args: argparse.Namespace, settings: Settings) -> int:
    from services import up as supervisor

    async with until_signalled() as tg:
        running: supervisor.Running = await tg.start(
            lambda task_status: supervisor.run(settings, processes=True, task_status=task_status)
        )
        loop.freeze_started()
        where = f"embedded, store {running.home / 'nats'}" if running.embedded else "external"
        show.line("agentledger is up")
        show.line(f"  HTTP       {running.http_url}  (health {running.http_url}/health)")
        show.line(f"  dashboard  {running.http_url}/dashboard")
        show.line(f"  NATS       {running.nats_url}  ({where})")
        show.line(
            f"  snapshots  {running.snapshot_dir}/<projection>.snapshot.duckdb (open read-only)"
        )
        if running.credentials is not None:
            show.line(
                f"  credentials {running.credentials}  (admin.json, reader.json, one per service; "
                "agents: agentledger agents add ID)"
            )
        show.line("Ctrl-C stops everything.")
    show.note("agentledger stopped")
    return 0


async def serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.service != "gateway" and (args.workers is not None or args.reuse_port):
        raise UsageError("--workers applies to the gateway")
    nc = await connect_once(settings.url_as(args.service))  # reachable, as that service
    await nc.close()
    if args.service == "gateway":
        if args.only:
            raise UsageError("--only applies to the projector")
        from services.gateway import app as gateway
        from services.gateway import workers

        count = args.workers if args.workers is not None else settings.workers
        if count < 1:
            raise UsageError("--workers must be at least 1")
        if count > 1:
            target: Callable[..., Awaitable[Any]] = partial(workers.serve_workers, workers=count)
        else:
            target = partial(gateway.serve, reuse_port=args.reuse_port)
        what = f"gateway listening on {settings.http_url} ({count} worker{'s' if count > 1 else ''})"
    elif args.service == "tasks":
        if args.only:
            raise UsageError("--only applies to the projector")
        from services.tasks import service as tasks

        target = tasks.serve
        what = "tasks service answering on cmd.tasks.*"
    elif args.service == "dispatcher":
        if args.only:
            raise UsageError("--only applies to the projector")
        if settings.dispatch_mode == "off":
            raise UsageError("the dispatcher needs dispatch_mode (AGENTLEDGER_DISPATCH_MODE)")
        from services.dispatcher import loop as dispatcher

        target = dispatcher.serve
        what = f"dispatcher waking agents by {settings.dispatch_mode}"
    elif args.service == "scheduler":
        if args.only:
            raise UsageError("--only applies to the projector")
        if not settings.calendar_url:
            raise UsageError("the scheduler needs calendar_url (AGENTLEDGER_CALENDAR_URL)")
        from services.scheduler import service as scheduler

        target = scheduler.serve
        what = f"scheduler of claw {settings.claw_identifier} syncing from {settings.calendar_url}"
    elif args.service == "notifier":
        if args.only:
            raise UsageError("--only applies to the projector")
        from services.notifier import service as notifier

        target = notifier.serve
        what = "notifier delivering reports"
    elif args.service in ("watchdog", "dispatcher"):
        if args.only:
            raise UsageError("--only applies to the projector")
        from services import watchdog
        from services.dispatcher import loop as dispatcher

        target = watchdog.serve if args.service == "watchdog" else dispatcher.serve
        what = (f"watchdog deciding every {settings.watchdog_interval_s:g}s"
                if args.service == "watchdog" else f"dispatcher ({settings.dispatch_mode})")
    else:
        from projections import catalog
        from services.projector import service as projector

        catalog.select(args.only)

        async def target(s: Settings, *, task_status: Any) -> None:
            await projector.serve(s, args.only or None, task_status=task_status)

        what = f"projector {settings.projector_name} answering on q.{settings.projector_name}"
    # the projector owns the home's DuckDB files (under `up`, the lock `up` holds); the others
    # keep nothing there
    lock = args.service == "projector" and not homelock.held_by_parent(settings.home_path)
    owner = homelock.hold(settings.home_path, "serve projector") if lock else nullcontext()
    with owner:
        async with until_signalled() as tg:
            await tg.start(target, settings)
            loop.freeze_started()
            show.line(f"{what} (NATS {redact(settings.url)}); Ctrl-C stops it")
    show.note(f"{args.service} stopped")
    return 0


# --- events ---------------------------------------------------------------------------------
