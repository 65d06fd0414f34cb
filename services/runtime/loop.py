"""How the long-running commands run: on uvloop where it is installed, with start-up objects frozen.

uvloop's loop and socket transports are C; for the gateway they take ~10-20 % of the CPU a
proxied request costs (measured with ops/bench/proxy.py). Every library here (nats-py, aiohttp,
anyio, asyncio subprocesses) runs unchanged on it; without it the stock asyncio loop is used.

Once a service has started, `freeze_started` moves every object alive then (modules, settings,
folds read at start) out of the garbage collector's reach: they are never garbage, and each full
collection that scanned them stalled every command in flight for ~30 ms (ops/bench/claims.py: p99
9-14 ms instead of 9-27 ms, 10-20 % more commands/s). Objects created later are collected as usual.
"""

from __future__ import annotations

import gc
import importlib.util
from typing import Any


def backend_options() -> dict[str, Any]:
    """`anyio.run(..., backend_options=backend_options())`."""
    return {"use_uvloop": True} if importlib.util.find_spec("uvloop") is not None else {}


def freeze_started() -> None:
    """Call once everything the process serves has started."""
    gc.collect()
    gc.freeze()
