"""Fold one domain's aggregates straight from its stream: for small domains read on demand.

Backends and targets change rarely and are read by whoever needs them (the admin API, the CLI,
the SDK choosing default targets) without a projector in between. Every subject counts for its
aggregate's last seq, even an undecodable payload or a no-op: that is the seq JetStream checks an
optimistic append against.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from events.core import codec
from events.core.errors import EventError
from events.core.meta import at_from_ns, parse_ack_subject
from events.core.streams import stream_name
from events.core.subjects import aggregate_filter, domain_filter

log = logging.getLogger(__name__)

S = TypeVar("S")
FETCH = 256


async def fold(
    js: JetStreamContext, domain: str, initial: Callable[[str], S],
    evolve: Callable[[S, Any, datetime], tuple[S, str | None]], aggregate_id: str | None = None,
) -> dict[str, tuple[S, int]]:
    """Every aggregate of `domain` (or one) folded with `evolve`, with its last seq."""
    subject = aggregate_filter(domain, aggregate_id) if aggregate_id else domain_filter(domain)
    config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE,
                            filter_subject=subject, inactive_threshold=30.0, mem_storage=True)
    try:
        sub = await js.pull_subscribe(subject, stream=stream_name(domain), config=config)
    except nats.js.errors.NotFoundError:
        return {}
    states: dict[str, tuple[S, int]] = {}
    try:
        pending = (await sub.consumer_info()).num_pending
        while pending > 0:
            for msg in await sub.fetch(min(pending, FETCH), timeout=5.0):
                pending -= 1
                meta = parse_ack_subject(msg.reply)
                aggregate = msg.subject.split(".")[1]
                state = states[aggregate][0] if aggregate in states else initial(aggregate)
                try:
                    event = codec.decode(msg.subject, msg.data)
                except EventError as exc:  # kept in the stream, skipped by every reader alike
                    log.debug("%s seq %d: undecodable, skipped: %s", msg.subject, meta.seq, exc)
                else:
                    state, _ = evolve(state, event, at_from_ns(meta.at_ns))
                states[aggregate] = (state, meta.seq)
    finally:
        await sub.unsubscribe()
    return states
