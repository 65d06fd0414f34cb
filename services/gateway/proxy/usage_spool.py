"""Usage events leave the response path through a bounded local spool and a background publisher.

`put` never waits: the proxy answers its client first. The publisher lets events gather for
`LINGER_S` and sends them in pipelined batches (`EventClient.publish_many`): on loopback a socket
write costs about as much as a small HTTP request's parsing, so one per event would double the
gateway's NATS cost; what JetStream did not ack goes back to the head of the spool
and is sent again with the same `Nats-Msg-Id`, so an event whose ack was lost is stored once.
While NATS is unreachable the spool holds up to `capacity` events (plus a batch whose publish
failed, put back at the head); beyond that the newest are
refused (the proxy still answers its client; what waits keeps its place and is stored once),
counted in `dropped` and `agentledger_usage_spool_dropped_total`, logged at the first refusal
of an episode and every 1000th, and summed up once the spool has drained: nothing is dropped
silently. Refusing at the door rather than evicting the oldest means an event once accepted is
never lost afterwards, and each loss is counted when and where it happens.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from events.core.client import EventClient, Outgoing, PublishError
from events.core.errors import EventError
from services.runtime import telemetry

log = logging.getLogger(__name__)

BATCH = 256
LINGER_S = 0.005  # one write and one read carry the usage events of ~5 ms, not one syscall each
RETRY_MIN_S = 0.1
RETRY_MAX_S = 2.0


_spools: weakref.WeakSet[UsageSpool] = weakref.WeakSet()


def _dropped(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(sum(s.dropped for s in list(_spools)))]


telemetry.meter().create_observable_counter(
    "agentledger_usage_spool_dropped", [_dropped],
    description="Usage events refused because the local spool was full while NATS was unreachable",
)


class UsageSpool:
    def __init__(self, events: EventClient, capacity: int = 100_000) -> None:
        self.events = events
        self.capacity = capacity
        self.items: deque[Outgoing] = deque()
        self.published = 0
        self.dropped = 0
        self._episode = 0  # refused since the spool was last empty
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        _spools.add(self)

    def put(self, out: Outgoing) -> bool:
        """Queue one usage event; False when the spool is full and the event is refused."""
        if len(self.items) >= self.capacity:
            self.dropped += 1
            self._episode += 1
            if self._episode == 1 or self._episode % 1000 == 0:
                log.error("usage spool full (%d events waiting for NATS): refusing new usage events, "
                          "%d refused in this outage, %d in all (agentledger_usage_spool_dropped_total)",
                          self.capacity, self._episode, self.dropped)
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
                if self._episode:
                    log.error("usage spool drained; %d usage events were refused while it was full "
                              "and are not in the stream", self._episode)
                    self._episode = 0
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self.events.nc.is_connected:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if len(self.items) < BATCH:
                await asyncio.sleep(LINGER_S)
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
