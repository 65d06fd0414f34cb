"""The projector host: one runtime per projection, the query responder and periodic snapshots.

It is the only owner of the projection files (`<projections_dir>/<name>.duckdb`) and does every
live file change itself: a rebuilt file is swapped in here, between two batches, never behind its
back.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import duckdb
from anyio.abc import TaskGroup, TaskStatus
from nats.aio.client import Client as NATS
from opentelemetry.trace import Tracer

from projections import catalog
from projections.runtime.adhoc import AdHocSql
from projections.runtime.loop import Runtime
from projections.runtime.protocol import QueryError
from projections.runtime.rebuild import swap_files
from projections.runtime.responder import Responder
from projections.runtime.store import Store, file_path
from services.settings import Settings

log = logging.getLogger(__name__)


class ProjectorError(Exception):
    """Root of what serve/rebuild/replay raise to their callers; the message says what to do."""


def module_named(name: str) -> ModuleType:
    """The projection module called `name`, or a ProjectorError listing the known ones."""
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
    snapshot_at: datetime | None = None  # when the snapshot file was last written, for /health


class ProjectorHost:
    """One runtime per projection, the query responder and periodic snapshots, in one task group."""

    def __init__(
        self, settings: Settings, nc: NATS, names: list[str] | None = None, *, tracer: Tracer | None = None
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.tracer = tracer
        self.directory = settings.projections_dir
        modules = [module_named(n) for n in names] if names else catalog.select(None)
        self.slots = {m.NAME: _Slot(m) for m in modules}
        self._tg: TaskGroup | None = None
        self.adhoc: AdHocSql | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Open and subscribe every projection, then answer; runs until cancelled."""
        self.directory.mkdir(parents=True, exist_ok=True)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for slot in self.slots.values():
                await tg.start(self._host, slot)
            st = self.settings
            adhoc = AdHocSql(slots=st.sql_slots, timeout_s=st.query_timeout_s, memory_mb=st.sql_memory_mb,
                             threads=st.sql_threads, max_bytes=self.nc.max_payload or 1024 * 1024)
            responder = Responder(self.nc, self, st.projector_name, row_limit=st.query_row_limit,
                                  timeout_s=st.query_timeout_s, adhoc=adhoc)
            self.adhoc = adhoc
            await tg.start(responder.run)
            tg.start_soon(self._snapshots)
            log.info("projector %s hosting %s in %s", self.settings.projector_name,
                     ", ".join(self.slots), self.directory)
            task_status.started()

    async def _host(self, slot: _Slot, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        name = slot.module.NAME
        store = Store(file_path(self.directory, name), slot.module, confine=True)
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

    async def wait_for(self, name: str, after: dict[str, int], timeout_s: float) -> None:
        module, _ = self.projection(name)
        reads = [s for s, _ in module.SOURCES]
        if unknown := sorted(set(after) - set(reads)):
            raise QueryError("bad_request", f"projection {name} does not read {', '.join(unknown)}; "
                             f"it reads {', '.join(reads)}")
        slot = self.slots[name]
        with anyio.move_on_after(timeout_s):
            while (runtime := slot.runtime) is None or not runtime.applied(after):
                if runtime is None:
                    await anyio.sleep(0.05)
                else:
                    await runtime.advanced.wait()
            return
        at = slot.runtime.checkpoints if slot.runtime else {}
        raise QueryError("timeout", f"projection {name} has not applied {after} within {timeout_s:g}s "
                         f"(it is at {at})")

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
            out[name]["snapshot_at"] = slot.snapshot_at.isoformat() if slot.snapshot_at else None
        return out

    async def snapshot(self, name: str) -> Path:
        """Write `<name>.snapshot.duckdb` now, between two batches."""
        self.projection(name)
        slot = self.slots[name]
        async with slot.snapshot_lock:
            return await self._snapshot(name, slot)

    async def _snapshot(self, name: str, slot: _Slot) -> Path:
        _, store = self.projection(name)
        dest = file_path(self.directory, name, "snapshot")
        checkpoints = dict(slot.runtime.checkpoints) if slot.runtime else {}
        await anyio.to_thread.run_sync(store.snapshot, dest)
        os.chmod(dest, 0o640 if self.settings.snapshot_group_read else 0o600)
        slot.snapshot_of = checkpoints
        slot.snapshot_at = datetime.now(UTC)
        log.debug("projection %s snapshot at %s -> %s", name, checkpoints, dest)
        return dest

    async def readable(self, name: str) -> Path:
        """The snapshot ad-hoc SQL reads, rewritten first when the projection has moved on since:
        a query sees what was applied before it was asked. Queries arriving together share one
        rewrite (the second finds the first's file current)."""
        self.projection(name)
        slot = self.slots[name]
        dest = file_path(self.directory, name, "snapshot")
        async with slot.snapshot_lock:
            if dest.exists() and (slot.runtime is None or slot.runtime.checkpoints == slot.snapshot_of):
                return dest
            return await self._snapshot(name, slot)

    async def swap(self, name: str, path: str) -> dict[str, Any]:
        """Adopt a file built elsewhere: stop, rename, reopen, resume from its checkpoint."""
        self.projection(name)
        slot = self.slots[name]
        built = _own_rebuild(self.directory, name, path)
        try:
            checkpoints = await anyio.to_thread.run_sync(_read_checkpoints, built, name)
        except duckdb.Error as exc:
            raise QueryError("bad_request", f"{path} is not a projection file of {name}: {exc}") from None
        await self._check_not_ahead(name, checkpoints)
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

    async def _check_not_ahead(self, name: str, checkpoints: dict[str, int]) -> None:
        """A file claiming events the streams never had was not built from them: refuse it."""
        js = self.nc.jetstream(timeout=self.settings.request_timeout_s)
        for stream, seq in checkpoints.items():
            try:
                last = (await js.stream_info(stream)).state.last_seq
            except Exception as exc:  # noqa: BLE001  (unknown stream, no answer)
                raise QueryError("bad_request", f"cannot check {name}'s checkpoint on {stream}: {exc}") from None
            if seq > last:
                raise QueryError(
                    "bad_request",
                    f"refusing to swap in {name}: its checkpoint {stream}={seq} is beyond the "
                    f"stream's last sequence {last}; it was not built from these streams",
                )

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


def _own_rebuild(directory: Path, name: str, path: str) -> Path:
    """Only `<projections>/<name>.next.duckdb` (a rebuild's output), a regular file of ours: a
    swap must never adopt a file from elsewhere, nor follow a link out of the folder."""
    expected = file_path(directory, name, "next")
    given = Path(path)
    if given.is_symlink() or given.resolve() != expected.resolve():
        raise QueryError(
            "forbidden", f"refusing to swap in {path}: only {expected} (made by "
            f"`agentledger rebuild {name}`) can be swapped in",
        )
    try:
        st = expected.lstat()
    except FileNotFoundError:
        raise QueryError("bad_request", f"no such file {expected}") from None
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        raise QueryError("forbidden", f"refusing to swap in {expected}: not a regular file of this user")
    return expected
