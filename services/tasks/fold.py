"""The tasks service's in-memory fold of TASKS and MAIL: each aggregate's state and last seq.

Two ordered consumers (`projections.runtime.consumer.OrderedFeed`) feed one buffer; `run` applies what
they deliver with the domains' own `evolve`, so the fold is what every reader computes. Every
subject counts for its aggregate's last seq, even a payload nobody can decode or an event
`evolve` ignores: that seq is what JetStream checks an optimistic append against.

The service also folds its own appends as soon as JetStream acked them (`apply_tasks` /
`apply_mail` with the acked seqs): an append that passed its expectation is exactly the next part
of those aggregates, so the next command on the same task need not wait for the consumer. An
event already folded (by the other path) is skipped by its seq.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

import anyio
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS

from events import mail, tasks
from events.core import codec
from events.core.errors import EventError, Unavailable
from events.core.meta import at_from_ns
from events.core.streams import stream_name
from events.core.subjects import domain_filter
from projections.runtime.buffer import Buffer
from projections.runtime.consumer import OrderedFeed

log = logging.getLogger(__name__)

DOMAINS = ("tasks", "mail")
BUFFER_CAPACITY = 8192


class Fold:
    """Task states on a `Board` (the decider's view), message states, and per-aggregate seqs."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.board = tasks.Board()
        self.task_seq: dict[str, int] = {}
        self.messages: dict[str, mail.Message] = {}
        self.message_seq: dict[str, int] = {}
        self.folded: dict[str, int] = dict.fromkeys(DOMAINS, 0)  # last seq the consumers applied
        self._buffer = Buffer(batch_size=1, batch_ms=1, capacity=BUFFER_CAPACITY)
        self._streams = {stream_name(d): d for d in DOMAINS}
        self._waiters: dict[str, list[tuple[int, int, asyncio.Future[None]]]] = {d: [] for d in DOMAINS}
        self._order = itertools.count()

    # -- reading -------------------------------------------------------------------------------

    def task(self, task_id: str) -> tasks.Task:
        return self.board.get(task_id) or tasks.initial_state(task_id)

    def message(self, message_id: str) -> mail.Message:
        return self.messages.get(message_id) or mail.initial_state(message_id)

    async def reach(self, domain: str, seq: int | None, timeout: float) -> None:
        """Wait until the consumer of `domain` has folded `seq` (None: the stream's last seq now)."""
        if seq is None:
            seq = await self._stream_last(domain)
        if self.folded[domain] >= seq:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters[domain], (seq, next(self._order), fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise Unavailable(
                f"the {domain} fold did not reach seq {seq} within {timeout:.1f}s "
                f"(at {self.folded[domain]})"
            ) from None

    async def _stream_last(self, domain: str) -> int:
        info = await self.nc.jetstream().stream_info(stream_name(domain))
        return int(info.state.last_seq)

    # -- running -------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow both streams; `started` once the fold holds everything stored at start."""
        targets = {d: await self._stream_last(d) for d in DOMAINS}
        async with anyio.create_task_group() as tg:
            for domain in DOMAINS:
                feed = OrderedFeed(self.nc, stream_name(domain), [domain_filter(domain)], 1,
                                   self._buffer, name=f"tasks-service-{domain}")
                await tg.start(feed.run)
            tg.start_soon(self._apply_loop)
            for domain, target in targets.items():
                await self.reach(domain, target, timeout=float("inf"))
            log.info("tasks fold ready: %d tasks, %d messages (TASKS seq %d, MAIL seq %d)",
                     len(self.board.tasks), len(self.messages), self.folded["tasks"], self.folded["mail"])
            task_status.started()

    async def _apply_loop(self) -> None:
        while True:
            for stream, subject, data, seq, ns, _headers in await self._buffer.take():
                domain = self._streams[stream]
                self._apply_raw(domain, subject, data, seq, ns)
                self.folded[domain] = seq
                waiters = self._waiters[domain]
                while waiters and waiters[0][0] <= seq:
                    fut = heapq.heappop(waiters)[2]
                    if not fut.done():
                        fut.set_result(None)

    def _apply_raw(self, domain: str, subject: str, data: bytes, seq: int, ns: int) -> None:
        parts = subject.split(".")
        if len(parts) != 3:
            return
        aggregate = parts[1]
        seqs = self.task_seq if domain == "tasks" else self.message_seq
        if seqs.get(aggregate, 0) >= seq:
            return  # folded already, from our own ack
        seqs[aggregate] = seq
        try:
            event = codec.decode(subject, data)
        except EventError as exc:  # kept in the stream, skipped by every reader alike
            log.debug("%s seq %d: undecodable, skipped: %s", subject, seq, exc)
            return
        self._evolve(domain, aggregate, event, at_from_ns(ns), seq)

    def _evolve(self, domain: str, aggregate: str, event: object, at: datetime, seq: int) -> None:
        if domain == "tasks":
            state, reason = tasks.evolve(self.task(aggregate), event, at, seq)  # type: ignore[arg-type]
            if reason is None and state.created:
                self.board.put(state)
        else:
            msg, reason = mail.evolve(self.message(aggregate), event, at, seq)  # type: ignore[arg-type]
            if reason is None and msg.sent:
                self.messages[aggregate] = msg
        if reason is not None:
            log.debug("%s.%s seq %d: no-op: %s", domain, aggregate, seq, reason)

    # -- our own appends -----------------------------------------------------------------------

    def apply_tasks(self, emitted: Sequence[tasks.Emitted], seqs: Iterable[int], at: datetime) -> None:
        for e, seq in zip(emitted, seqs, strict=True):
            if self.task_seq.get(e.task_id, 0) < seq:
                self.task_seq[e.task_id] = seq
                self._evolve("tasks", e.task_id, e.event, at, seq)

    def apply_mail(self, emitted: Sequence[mail.MailEmitted], seqs: Iterable[int], at: datetime) -> None:
        for e, seq in zip(emitted, seqs, strict=True):
            if self.message_seq.get(e.message_id, 0) < seq:
                self.message_seq[e.message_id] = seq
                self._evolve("mail", e.message_id, e.event, at, seq)
