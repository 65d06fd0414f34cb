"""Waiting for a condition with a bound instead of sleeping for a guessed time."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


async def eventually(check: Callable[[], T | Awaitable[T]], timeout: float = 60.0, what: str = "") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    last: Any = None
    try:
        with anyio.fail_after(timeout):
            while True:
                last = check()
                if inspect.isawaitable(last):
                    last = await last
                if last:
                    return last  # type: ignore[no-any-return]
                await anyio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not reached in {timeout:.0f}s: {what or check}; last value {last!r}") from None
