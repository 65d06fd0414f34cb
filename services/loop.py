"""The event loop the long-running commands run on: uvloop where it is installed.

uvloop's loop and socket transports are C; for the gateway they take ~10-20 % of the CPU a
proxied request costs (measured with ops/bench/proxy.py). Every library here (nats-py, aiohttp,
anyio, asyncio subprocesses) runs unchanged on it; without it the stock asyncio loop is used.
"""

from __future__ import annotations

import importlib.util
from typing import Any


def backend_options() -> dict[str, Any]:
    """`anyio.run(..., backend_options=backend_options())`."""
    return {"use_uvloop": True} if importlib.util.find_spec("uvloop") is not None else {}
