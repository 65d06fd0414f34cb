"""Usage events leave the response path through a bounded local spool and a background publisher.

`put` never waits: the proxy answers its client first. The publisher sends what waits in pipelined
batches (`EventClient.publish_many`); what JetStream did not ack goes back to the head of the spool
and is sent again with the same `Nats-Msg-Id`, so an event whose ack was lost is stored once.
While NATS is unreachable the spool holds up to `capacity` events; beyond that the newest are
refused, counted in `dropped` and logged: nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from events.client import EventClient, Outgoing, PublishError
from events.errors import EventError

log = logging.getLogger(__name__)

BATCH = 256
RETRY_MIN_S = 0.1
RETRY_MAX_S = 2.0


class UsageSpool:
    def __init__(self, events: EventClient, capacity: int = 100_000) -> None:
        self.events = events
        self.capacity = capacity
        self.items: deque[Outgoing] = deque()
        self.published = 0
        self.dropped = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def put(self, out: Outgoing) -> bool:
        if len(self.items) >= self.capacity:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("usage spool full (%d events waiting for NATS): %d usage events refused so far",
                          self.capacity, self.dropped)
            return False
        self.items.append(out)
        self._idle.clear()
        self._wake.set()
        return True

    async def drained(self, timeout: float) -> bool:
        """True once everything put so far is acked (tests, shutdown)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        delay = RETRY_MIN_S
        while True:
            if not self.items:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self.events.nc.is_connected:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            batch = [self.items.popleft() for _ in range(min(BATCH, len(self.items)))]
            try:
                await self.events.publish_many(batch)
            except PublishError as exc:
                failed = [out for out, seq in zip(batch, exc.seqs, strict=False) if seq is None]
                failed += batch[len(exc.seqs):]  # never sent
                self._requeue(failed, exc)
                self.published += len(batch) - len(failed)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            except EventError as exc:
                self._requeue(batch, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.published += len(batch)
            delay = RETRY_MIN_S

    def _requeue(self, failed: list[Outgoing], exc: Exception) -> None:
        log.warning("usage spool: %d events not acked, kept for retry (%d waiting): %s",
                    len(failed), len(self.items) + len(failed), exc)
        self.items.extendleft(reversed(failed))
