"""The notifier's in-memory fold of TARGETS and REPORTS: the targets and the per-target queues.

Two ordered consumers from seq 1 feed one buffer, so a restarted notifier rebuilds every queue
from the streams (principle 1: nothing of its own survives it). The notifier also folds its own
events as soon as JetStream acked them (`apply_own`), so the next send need not wait for the
consumer; when the consumer then delivers the same events, evolve records them as no-ops or
applies the same values again. After every fold each listener's event is set (`listen`), so the
workers look at their queue again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import anyio
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS

from events import reports, targets
from events.core import codec
from events.core.errors import EventError
from events.core.meta import at_from_ns
from events.core.streams import stream_name
from events.core.subjects import domain_filter
from projections.runtime.buffer import Buffer
from projections.runtime.consumer import OrderedFeed

log = logging.getLogger(__name__)

DOMAINS = ("targets", "reports")


class Fold:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.board = reports.Board()
        self.targets: dict[str, targets.Target] = {}
        self.folded: dict[str, int] = dict.fromkeys(DOMAINS, 0)
        self._listeners: list[asyncio.Event] = []
        self._own: set[int] = set()  # REPORTS seqs we folded at their ack, not yet seen again
        self._buffer = Buffer(batch_size=4096, batch_ms=1, capacity=16384)
        self._streams = {stream_name(d): d for d in DOMAINS}

    async def last_seqs(self) -> dict[str, int]:
        js = self.nc.jetstream()
        return {d: int((await js.stream_info(stream_name(d))).state.last_seq) for d in DOMAINS}

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow both streams; `started` once everything stored at start is folded."""
        goal = await self.last_seqs()
        async with anyio.create_task_group() as tg:
            for domain in DOMAINS:
                feed = OrderedFeed(self.nc, stream_name(domain), [domain_filter(domain)], 1,
                                   self._buffer, name=f"notifier-{domain}")
                await tg.start(feed.run)
            tg.start_soon(self._apply_loop)
            changed = self.listen()
            while any(self.folded[d] < goal[d] for d in DOMAINS):
                await changed.wait()
                changed.clear()
            self._listeners.remove(changed)
            log.info("notifier fold ready: %d targets, %d reports (TARGETS seq %d, REPORTS seq %d)",
                     len(self.targets), len(self.board.reports), self.folded["targets"], self.folded["reports"])
            task_status.started()

    async def _apply_loop(self) -> None:
        while True:
            for stream, subject, data, seq, ns, _ in await self._buffer.take():
                domain = self._streams[stream]
                self.folded[domain] = seq
                aggregate = subject.split(".")[1] if subject.count(".") == 2 else ""
                if domain == "reports" and seq in self._own:
                    self._own.discard(seq)  # our own event, folded when JetStream acked it
                    continue
                try:
                    event = codec.decode(subject, data)
                except EventError as exc:  # kept in the stream, skipped by every reader alike
                    log.debug("%s seq %d: undecodable, skipped: %s", subject, seq, exc)
                    if domain == "reports":  # still the report's last seq for our appends' OCC
                        self.board.last_seq[aggregate] = seq
                    continue
                self._evolve(domain, aggregate, event, at_from_ns(ns), seq)
            self._notify()

    def listen(self) -> asyncio.Event:
        """An event set after every change of the fold (the listener clears it)."""
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    def _notify(self) -> None:
        for event in self._listeners:
            event.set()

    def _evolve(self, domain: str, aggregate: str, event: object, at: datetime, seq: int) -> None:
        if domain == "reports":
            self.board.apply(aggregate, event, at, seq)  # type: ignore[arg-type]
            return
        state = self.targets.get(aggregate) or targets.initial_state(aggregate)
        state, reason = targets.evolve(state, event, at)  # type: ignore[arg-type]
        if reason is None:
            self.targets[aggregate] = state

    def apply_own(self, report_id: str, events: list[reports.ReportEvent], seqs: list[int], at: datetime) -> None:
        for event, seq in zip(events, seqs, strict=True):
            if seq > self.folded["reports"]:  # else the consumer has folded it already
                self._own.add(seq)
                self.board.apply(report_id, event, at, seq)
        self._notify()

    async def reach(self, seq: int | None, timeout: float) -> None:
        """Wait (bounded) until the REPORTS consumer has folded `seq` (None: the stream's last)."""
        if seq is None:
            seq = (await self.last_seqs())["reports"]
        changed = self.listen()
        try:
            with anyio.move_on_after(timeout):
                while self.folded["reports"] < seq:
                    await changed.wait()
                    changed.clear()
        finally:
            self._listeners.remove(changed)
