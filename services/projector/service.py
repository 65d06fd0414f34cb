"""The projector service: hosts projections, answers queries, writes snapshots, swaps rebuilds in.

It is the only process that opens the projection files (`<projections_dir>/<name>.duckdb`);
everyone else asks on `q.<projector_name>` or opens `<name>.snapshot.duckdb` read-only.

Run alone with `python -m services.projector.service [--only NAME]...` (settings from the environment and
`agentledger.toml`); the CLI's `agentledger serve projector` calls `serve`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import nats
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS

from events.core.inbox import inbox_for
from events.core.streams import ensure_streams
from projections import catalog
from projections.runtime.loop import ProjectionFailed
from projections.runtime.protocol import QueryClient, QueryError
from projections.runtime.rebuild import build, swap_files
from projections.runtime.store import file_path, remove_file
from services.projector.host import ProjectorError, ProjectorHost, module_named
from services.runtime import homelock, loop
from services.runtime.connection import close_quietly, redact
from services.settings import Settings, SettingsError, load

__all__ = ["ProjectorError", "ProjectorHost", "main", "rebuild", "replay", "serve"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# Rebuild and replay read a backlog nobody waits on batch by batch: bigger batches spread the
# per-batch cost (load, upsert, commit) over more events.
BUILD_BATCH_FACTOR = 4


# -- entry points -----------------------------------------------------------------------------


async def connect(settings: Settings, name: str, principal: str | None = None) -> NATS:
    """A connection that keeps reconnecting: a projector outlives nats-server restarts.

    It carries the credentials of `principal` (by default the service the name says:
    `agentledger-tasks-fold` is `tasks`), so each service is itself on NATS.
    """
    principal = principal or name.removeprefix("agentledger-").split("-")[0]
    ours: list[NATS] = []

    async def on_error(exc: Exception) -> None:
        log.warning("nats: %s", exc)

    async def on_disconnect() -> None:
        if ours and not (ours[0].is_closed or ours[0].is_draining):
            log.warning("nats: disconnected from %s", redact(settings.url))

    async def on_reconnect() -> None:
        log.info("nats: reconnected to %s", redact(settings.url))

    url = settings.url_as(principal)
    nc = await nats.connect(
        url.split(","), name=name, inbox_prefix=inbox_for(url),  # a cluster: its URLs comma-separated
        max_reconnect_attempts=-1, error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect,
    )
    ours.append(nc)
    return nc


async def serve(
    settings: Settings, only: list[str] | None = None, *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Connect, make sure the streams exist, host the projections until cancelled."""
    host_names = [module_named(n) for n in only] if only else catalog.select(None)  # fail before connecting
    nc = await connect(settings, f"agentledger-{settings.projector_name}", "projector")
    try:
        await ensure_streams(nc.jetstream(), **settings.stream_options())
        await ProjectorHost(settings, nc, [m.NAME for m in host_names]).run(task_status=task_status)
    finally:
        with anyio.CancelScope(shield=True):
            await close_quietly(nc)


async def rebuild(settings: Settings, name: str, progress: Progress | None = None) -> dict[str, Any]:
    """Replay `name` from seq 1 into `<name>.next.duckdb`, then make it live.

    A running projector hosting `name` is asked to swap (it keeps serving and resumes from the new
    file's checkpoint); otherwise the files are renamed here.
    """
    module = module_named(name)
    built = file_path(settings.projections_dir, name, "next")
    nc = await connect(settings, "agentledger-rebuild", settings.identity)  # the CLI's caller, not a service
    try:
        try:
            checkpoints = await build(
                nc, module, built, progress=progress,
                batch_size=settings.batch_size * BUILD_BATCH_FACTOR, batch_ms=settings.batch_ms,
            )
        except ProjectionFailed as exc:
            remove_file(built)
            raise ProjectorError(f"rebuild of {name} stopped, the live file is untouched: {exc}") from exc
        except BaseException:
            remove_file(built)
            raise
        client = QueryClient(nc, settings.projector_name)
        try:
            hosted = await client.health(timeout=5.0)
        except QueryError as exc:
            if exc.code not in ("unavailable", "timeout"):
                raise
            hosted = {}
        if name in hosted:
            answer = await client.swap(name, str(built))
            return {"projection": name, "checkpoints": checkpoints, "swapped_by": "service",
                    "previous": answer.get("previous")}
        previous = swap_files(settings.projections_dir, name, built)
        return {"projection": name, "checkpoints": checkpoints, "swapped_by": "rebuild",
                "previous": str(previous) if previous else None}
    finally:
        with anyio.CancelScope(shield=True):
            await close_quietly(nc)


async def replay(
    settings: Settings, name: str, until: int | datetime | None, out: Path | str,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Build `name` as it was at `until` (stream seq or aware datetime) into the file `out`."""
    module = module_named(name)
    out = Path(out)
    for kind in ("", "snapshot", "next", "prev"):
        if out.resolve() == file_path(settings.projections_dir, name, kind).resolve():
            raise ProjectorError(f"{out} is a file of the projector; replay into a separate file")
    nc = await connect(settings, "agentledger-replay", settings.identity)
    try:
        return await build(
            nc, module, out, until=until, progress=progress,
            batch_size=settings.batch_size * BUILD_BATCH_FACTOR, batch_ms=settings.batch_ms,
        )
    except ProjectionFailed as exc:
        raise ProjectorError(f"replay of {name} stopped: {exc}") from exc
    finally:
        with anyio.CancelScope(shield=True):
            await close_quietly(nc)


async def _run_until_signalled(settings: Settings, only: list[str] | None) -> None:
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("projector: %s received, stopping", signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(stop_on_signal)
        await tg.start(serve, settings, only)
        loop.freeze_started()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.projector.service", description=__doc__)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help=f"host only this projection (repeatable); known: {', '.join(catalog.PROJECTIONS)}")
    parser.add_argument("--config", help="agentledger.toml to read")
    args = parser.parse_args(argv)
    try:
        settings = load(args.config)
        for name in args.only or []:
            module_named(name)
    except (SettingsError, ProjectorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        with homelock.hold(settings.home_path, "serve projector"):
            anyio.run(_run_until_signalled, settings, args.only, backend_options=loop.backend_options())
    except homelock.HomeBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
