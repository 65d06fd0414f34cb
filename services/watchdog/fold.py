"""The watchdog's fold: ordered consumers over AGENTS, TASKS, RUNS and WATCHDOG into a `Fleet`.

Every start folds the streams from seq 1, its own decisions included, so what was decided
before a crash is known before the first pass; `run` reports started only once the fold holds
everything the streams held at start.
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS

from events.core import codec
from events.core.errors import EventError
from events.core.meta import at_from_ns
from events.core.streams import stream_name
from events.core.subjects import domain_filter
from events.watchdog import Fleet
from projections.runtime.buffer import Buffer
from projections.runtime.consumer import OrderedFeed

log = logging.getLogger(__name__)

DOMAINS = ("agents", "tasks", "runs", "watchdog")
BUFFER_CAPACITY = 8192


class Fold:
    def __init__(self, nc: NATS, fleet: Fleet | None = None) -> None:
        self.nc = nc
        self.fleet = fleet or Fleet()
        self.folded: dict[str, int] = dict.fromkeys(DOMAINS, 0)
        self._buffer = Buffer(batch_size=512, batch_ms=5, capacity=BUFFER_CAPACITY)
        self._streams = {stream_name(d): d for d in DOMAINS}
        self._changed = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        js = self.nc.jetstream()
        targets = {d: int((await js.stream_info(stream_name(d))).state.last_seq) for d in DOMAINS}
        async with anyio.create_task_group() as tg:
            for domain in DOMAINS:
                feed = OrderedFeed(self.nc, stream_name(domain), [domain_filter(domain)], 1,
                                   self._buffer, name=f"watchdog-{domain}")
                await tg.start(feed.run)
            tg.start_soon(self._apply_loop)
            while any(self.folded[d] < t for d, t in targets.items()):
                await self._changed.wait()
            log.info("watchdog fold ready: %d agents, %d tasks, %d decisions",
                     len(self.fleet.agents), len(self.fleet.tasks), len(self.fleet.decided))
            task_status.started()

    async def _apply_loop(self) -> None:
        while True:
            for stream, subject, data, seq, ns, _headers in await self._buffer.take():
                domain = self._streams[stream]
                self.folded[domain] = seq
                try:
                    event = codec.decode(subject, data)
                except EventError as exc:  # kept in the stream, skipped by every reader alike
                    log.debug("%s seq %d: undecodable, skipped: %s", subject, seq, exc)
                    continue
                self.fleet.apply(domain, subject.split(".")[1], event, at_from_ns(ns), seq)
            self._changed.set()
            self._changed = anyio.Event()
