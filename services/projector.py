"""The projector service: hosts projections, answers queries, writes snapshots, swaps rebuilds in.

It is the only process that opens the projection files (`<projections_dir>/<name>.duckdb`);
everyone else asks on `q.<projector_name>` or opens `<name>.snapshot.duckdb` read-only.

Run alone with `python -m services.projector [--only NAME]...` (settings from the environment and
`agentledger.toml`); the CLI's `agentledger serve projector` calls `serve`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import duckdb
import nats
from anyio.abc import TaskGroup, TaskStatus
from nats.aio.client import Client as NATS
from opentelemetry.trace import Tracer

from events.streams import ensure_streams
from projections import catalog
from projections.protocol import QueryClient, QueryError
from projections.queries import Responder
from projections.rebuild import build, swap_files
from projections.runtime import ProjectionFailed, Runtime
from projections.store import Store, file_path, remove_file
from services.settings import Settings, SettingsError, load

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# Rebuild and replay read a backlog nobody waits on batch by batch: bigger batches spread the
# per-batch cost (load, upsert, commit) over more events.
BUILD_BATCH_FACTOR = 4


class ProjectorError(Exception):
    """Root of what serve/rebuild/replay raise to their callers; the message says what to do."""


def _module(name: str) -> ModuleType:
    try:
        return catalog.get(name)
    except catalog.UnknownProjection as exc:
        raise ProjectorError(str(exc)) from None


@dataclass
class _Slot:
    module: ModuleType
    store: Store | None = None
    runtime: Runtime | None = None
    scope: anyio.CancelScope | None = None
    stopped: anyio.Event = field(default_factory=anyio.Event)
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    snapshot_lock: anyio.Lock = field(default_factory=anyio.Lock)
    snapshot_of: dict[str, int] | None = None


class ProjectorHost:
    """One runtime per projection, the query responder and periodic snapshots, in one task group."""

    def __init__(
        self, settings: Settings, nc: NATS, names: list[str] | None = None, *, tracer: Tracer | None = None
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.tracer = tracer
        self.directory = settings.projections_dir
        modules = [_module(n) for n in names] if names else catalog.select(None)
        self.slots = {m.NAME: _Slot(m) for m in modules}
        self._tg: TaskGroup | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Open and subscribe every projection, then answer; runs until cancelled."""
        self.directory.mkdir(parents=True, exist_ok=True)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for slot in self.slots.values():
                await tg.start(self._host, slot)
            responder = Responder(
                self.nc, self, self.settings.projector_name,
                row_limit=self.settings.query_row_limit, timeout_s=self.settings.query_timeout_s,
            )
            await tg.start(responder.run)
            tg.start_soon(self._snapshots)
            log.info("projector %s hosting %s in %s", self.settings.projector_name,
                     ", ".join(self.slots), self.directory)
            task_status.started()

    async def _host(self, slot: _Slot, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        name = slot.module.NAME
        store = Store(file_path(self.directory, name), slot.module)
        await anyio.to_thread.run_sync(store.open)
        slot.store, slot.stopped = store, anyio.Event()
        slot.runtime = Runtime(
            slot.module, store, self.nc, batch_size=self.settings.batch_size,
            batch_ms=self.settings.batch_ms, tracer=self.tracer,
        )
        try:
            with anyio.CancelScope() as scope:
                slot.scope = scope
                await slot.runtime.run(task_status=task_status)
        finally:
            with anyio.CancelScope(shield=True):
                slot.store = None
                await anyio.to_thread.run_sync(store.close)
                slot.stopped.set()

    # -- what the responder asks -------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self.slots)

    def projection(self, name: str) -> tuple[ModuleType, Store]:
        slot = self.slots.get(name)
        if slot is None:
            raise QueryError("not_found", f"projection {name!r} is not hosted here; hosted: "
                             f"{', '.join(self.slots) or 'none'}")
        if slot.store is None or slot.store.con is None:
            raise QueryError("unavailable", f"projection {name} is being swapped or is not open")
        return slot.module, slot.store

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, slot in self.slots.items():
            if slot.runtime is None or slot.store is None:
                out[name] = {"healthy": False, "error": "not open", "lag": 0, "checkpoints": {},
                             "rejects": 0, "caught_up": False, "last_batch_at": None}
            else:
                out[name] = slot.runtime.health()
        return out

    async def snapshot(self, name: str) -> Path:
        """Write `<name>.snapshot.duckdb` now, between two batches."""
        _, store = self.projection(name)
        slot = self.slots[name]
        async with slot.snapshot_lock:
            dest = file_path(self.directory, name, "snapshot")
            checkpoints = dict(slot.runtime.checkpoints) if slot.runtime else {}
            await anyio.to_thread.run_sync(store.snapshot, dest)
            slot.snapshot_of = checkpoints
            log.debug("projection %s snapshot at %s -> %s", name, checkpoints, dest)
            return dest

    async def swap(self, name: str, path: str) -> dict[str, Any]:
        """Adopt a file built elsewhere: stop, rename, reopen, resume from its checkpoint."""
        self.projection(name)
        slot = self.slots[name]
        built = Path(path)
        if not built.is_file():
            raise QueryError("bad_request", f"no such file {path}")
        try:
            checkpoints = await anyio.to_thread.run_sync(_read_checkpoints, built, name)
        except duckdb.Error as exc:
            raise QueryError("bad_request", f"{path} is not a projection file of {name}: {exc}") from None
        assert self._tg is not None
        async with slot.lock:
            if slot.scope is not None:
                slot.scope.cancel()
            await slot.stopped.wait()
            previous = await anyio.to_thread.run_sync(swap_files, self.directory, name, built)
            await self._tg.start(self._host, slot)
        log.info("projection %s swapped in %s at %s", name, built, checkpoints)
        return {"projection": name, "checkpoints": checkpoints,
                "previous": str(previous) if previous else None}

    async def _snapshots(self) -> None:
        """Refresh each snapshot that is behind, from the start on, so readers find one early."""
        while True:
            for name, slot in self.slots.items():
                if slot.runtime is None or slot.runtime.checkpoints == slot.snapshot_of:
                    continue
                try:
                    await self.snapshot(name)
                except QueryError:
                    continue  # being swapped; the next round writes it
                except Exception:
                    log.exception("projection %s: snapshot failed", name)
            await anyio.sleep(self.settings.snapshot_interval_s)


def _read_checkpoints(path: Path, name: str) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT stream, seq FROM _checkpoints WHERE projection = ?", [name]).fetchall()
    finally:
        con.close()
    return {s: int(q) for s, q in rows}


# -- entry points -----------------------------------------------------------------------------


async def connect(settings: Settings, name: str) -> NATS:
    """A connection that keeps reconnecting: a projector outlives nats-server restarts."""
    ours: list[NATS] = []

    async def on_error(exc: Exception) -> None:
        log.warning("nats: %s", exc)

    async def on_disconnect() -> None:
        if ours and not (ours[0].is_closed or ours[0].is_draining):
            log.warning("nats: disconnected from %s", settings.url)

    async def on_reconnect() -> None:
        log.info("nats: reconnected to %s", settings.url)

    nc = await nats.connect(
        settings.url, name=name, max_reconnect_attempts=-1, error_cb=on_error,
        disconnected_cb=on_disconnect, reconnected_cb=on_reconnect,
    )
    ours.append(nc)
    return nc


async def serve(
    settings: Settings, only: list[str] | None = None, *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Connect, make sure the streams exist, host the projections until cancelled."""
    host_names = [_module(n) for n in only] if only else catalog.select(None)  # fail before connecting
    nc = await connect(settings, f"agentledger-{settings.projector_name}")
    try:
        await ensure_streams(nc.jetstream(), **settings.stream_options())
        await ProjectorHost(settings, nc, [m.NAME for m in host_names]).run(task_status=task_status)
    finally:
        with anyio.CancelScope(shield=True):
            await nc.close()


async def rebuild(settings: Settings, name: str, progress: Progress | None = None) -> dict[str, Any]:
    """Replay `name` from seq 1 into `<name>.next.duckdb`, then make it live.

    A running projector hosting `name` is asked to swap (it keeps serving and resumes from the new
    file's checkpoint); otherwise the files are renamed here.
    """
    module = _module(name)
    built = file_path(settings.projections_dir, name, "next")
    nc = await connect(settings, "agentledger-rebuild")
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
            await nc.close()


async def replay(
    settings: Settings, name: str, until: int | datetime | None, out: Path | str,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Build `name` as it was at `until` (stream seq or aware datetime) into the file `out`."""
    module = _module(name)
    out = Path(out)
    for kind in ("", "snapshot", "next", "prev"):
        if out.resolve() == file_path(settings.projections_dir, name, kind).resolve():
            raise ProjectorError(f"{out} is a file of the projector; replay into a separate file")
    nc = await connect(settings, "agentledger-replay")
    try:
        return await build(
            nc, module, out, until=until, progress=progress,
            batch_size=settings.batch_size * BUILD_BATCH_FACTOR, batch_ms=settings.batch_ms,
        )
    except ProjectionFailed as exc:
        raise ProjectorError(f"replay of {name} stopped: {exc}") from exc
    finally:
        with anyio.CancelScope(shield=True):
            await nc.close()


async def _run_until_signalled(settings: Settings, only: list[str] | None) -> None:
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("projector: %s received, stopping", signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(stop_on_signal)
        await serve(settings, only)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.projector", description=__doc__)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help=f"host only this projection (repeatable); known: {', '.join(catalog.PROJECTIONS)}")
    parser.add_argument("--config", help="agentledger.toml to read")
    args = parser.parse_args(argv)
    try:
        settings = load(args.config)
        for name in args.only or []:
            _module(name)
    except (SettingsError, ProjectorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    anyio.run(_run_until_signalled, settings, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
