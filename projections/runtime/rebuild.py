"""Building a projection file from the streams: a full rebuild, or the state as it was `until`.

Both are the runtime with a bound: read from seq 1 until the stream's last sequence at the start
(or until a given seq or JetStream time), commit batch by batch, stop. A file being built is never
the live one; going live is a rename (`swap_files`), so a reader sees the old or the new file,
never a half-built one, and the old file stays beside it as `<name>.prev.duckdb` for rollback.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from types import ModuleType

import anyio
from nats.aio.client import Client as NATS
from opentelemetry.trace import Tracer

from projections.runtime.loop import Progress, Runtime, until_bound
from projections.runtime.store import Store, file_path, remove_file

log = logging.getLogger(__name__)


async def build(
    nc: NATS,
    module: ModuleType,
    out: Path | str,
    *,
    until: int | datetime | None = None,
    progress: Progress | None = None,
    batch_size: int = 5000,
    batch_ms: int = 50,
    tracer: Tracer | None = None,
) -> dict[str, int]:
    """Write `module`'s tables into a fresh file `out`; returns its checkpoints.

    `until` is a stream sequence (messages with a higher seq are left out) or an aware datetime
    compared with each message's JetStream time; None means everything up to the last sequence
    each stream had when the build began.
    """
    out = Path(out)
    remove_file(out)
    js = nc.jetstream()
    bounds = {}
    for stream, _ in module.SOURCES:
        info = await js.stream_info(stream)
        bounds[stream] = until_bound(info.state.last_seq, until)
    store = await anyio.to_thread.run_sync(Store(out, module).open)
    try:
        runtime = Runtime(
            module, store, nc, batch_size=batch_size, batch_ms=batch_ms, bounds=bounds,
            progress=progress, tracer=tracer,
        )
        checkpoints = await runtime.run()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(store.close)
    log.info("projection %s built into %s up to %s (%d events)", module.NAME, out, checkpoints, runtime.events)
    return checkpoints


def swap_files(directory: Path, name: str, built: Path) -> Path | None:
    """Make `built` the live `<name>.duckdb`; the live one becomes `<name>.prev.duckdb`.

    Only for a file nobody has open for writing: a running projector swaps through `swap`.
    Returns the previous file's new path, or None when there was none.
    """
    live = file_path(directory, name)
    prev = file_path(directory, name, "prev")
    built = Path(built)
    if built.resolve() == live.resolve():
        raise ValueError(f"{built} is already the live file of projection {name}")
    moved = None
    if live.exists():
        remove_file(prev)
        os.replace(live, prev)
        wal = live.with_name(live.name + ".wal")
        if wal.exists():
            os.replace(wal, prev.with_name(prev.name + ".wal"))
        moved = prev
    os.replace(built, live)
    log.info("projection %s: %s is live, previous kept as %s", name, built, moved)
    return moved
