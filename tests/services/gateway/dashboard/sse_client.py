"""Reading `/dashboard/sse` the way a browser does: blocks of `field: value` lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import ClientResponse


async def events(resp: ClientResponse) -> AsyncIterator[tuple[str, Any, str | None]]:
    """(event, data, id) for each block that carries data."""
    fields: dict[str, list[str]] = {}
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line:
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
            continue
        if "data" in fields:
            yield fields.get("event", ["message"])[-1], orjson.loads("\n".join(fields["data"])), fields.get("id", [None])[-1]
        fields = {}


async def next_data(resp: ClientResponse) -> tuple[Any, str | None]:
    async for event, data, event_id in events(resp):
        if event == "data":
            return data, event_id
    raise AssertionError("the stream ended before a data event")
