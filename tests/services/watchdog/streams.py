"""Reading what the watchdog recorded, straight from the streams."""

from __future__ import annotations

from typing import Any

import nats.js.errors
from nats.aio.client import Client as NATS

from events.core import codec
from events.core.streams import stream_name
from events.core.subjects import domain_filter


async def events_of(nc: NATS, domain: str, subject: str | None = None) -> list[Any]:
    js, out, seq = nc.jetstream(), [], 1
    while True:
        try:
            raw = await js.get_msg(stream_name(domain), seq=seq, subject=subject or domain_filter(domain), next=True)
        except nats.js.errors.NotFoundError:
            return out
        out.append(codec.decode(raw.subject, raw.data))
        seq = raw.seq + 1


async def decisions(nc: NATS) -> list[tuple[str, str | None]]:
    return [(e.name, e.task_id) for e in await events_of(nc, "watchdog")]
