"""What the notifier tests share: a keyring, targets on the fake platforms, and the stream's history."""

from __future__ import annotations

from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from events.core import codec
from events.core.client import EventClient
from events.core.keyring import Keyring, new_key
from services import targets

RING = Keyring({"k1": new_key()})


async def add_target(client: EventClient, name: str, body: dict[str, Any]) -> None:
    await targets.execute(client, name, lambda _: targets.created(RING, name, body))


async def history(client: EventClient, domain: str = "reports") -> list[tuple[str, Any]]:
    """Every (subject, event) of the domain's stream, in order."""
    js = client.js
    cfg = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, mem_storage=True)
    sub = await js.pull_subscribe(f"{domain}.>", stream=domain.upper(), config=cfg)
    out: list[tuple[str, Any]] = []
    try:
        pending = (await sub.consumer_info()).num_pending
        while pending > 0:
            for msg in await sub.fetch(min(pending, 256), timeout=5.0):
                pending -= 1
                out.append((msg.subject, codec.decode(msg.subject, msg.data)))
    finally:
        await sub.unsubscribe()
    return out
