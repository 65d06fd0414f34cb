"""An ordered push consumer whose flow control waits for the projector.

Why not `js.subscribe(ordered_consumer=True, cb=...)`: with a callback, nats-py 2.16 answers the
server's flow-control requests as soon as a message is *received* (it compares against
`Subscription.delivered`, which counts receptions), not when the callback has taken it. A slow
projection then never slows the server down: the whole stream piles up in nats-py's pending queue
and, past its limits, messages are dropped as a slow consumer while the ordered-consumer sequence
tracking has already moved past them, i.e. silently lost. Here the same server-side consumer
(ephemeral, ack none, flow control, idle heartbeats, in memory) is driven by our callback: a
flow-control request is answered only when the callback reaches it, and the callback waits while
the buffer is full, so the server stalls instead of us dropping anything.

Ordering is checked like nats-py does: a gap in the consumer sequence, a heartbeat that reports a
different last consumer sequence, or silence for two heartbeat intervals recreates the consumer
from the last accepted stream sequence + 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import anyio
import nats.errors
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from projections.runtime.buffer import Buffer

log = logging.getLogger(__name__)


HEARTBEAT_S = 5.0


@dataclass(frozen=True)
class Bound:
    """Where a bounded read (rebuild, replay) of one stream stops.

    `target` is the stream's last sequence when the read began; messages after `until_seq` or
    later than `until_ns` are not taken.
    """

    target: int
    until_seq: int | None = None
    until_ns: int | None = None


class OrderedFeed:
    """Delivers one stream's messages matching `filters`, in order, from `start_seq`, into a Buffer.

    The callback never touches subscriptions (nats-py runs it in the subscription's own task,
    which unsubscribing cancels); it asks `run` to reset or finish instead.
    """

    def __init__(
        self,
        nc: NATS,
        stream: str,
        filters: list[str],
        start_seq: int,
        buffer: Buffer,
        *,
        bound: Bound | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        name: str = "",
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.stream = stream
        self.filters = filters
        self.buffer = buffer
        self.bound = bound
        self.heartbeat_s = heartbeat_s
        self.name = name
        self.last_seq = start_seq - 1  # last stream seq accepted into the buffer
        self.pending = 0  # messages after last_seq still in the stream, as the server counts
        self.delivered = 0  # messages accepted into the buffer
        self.done = bound is not None and start_seq > bound.target
        self._sub: Subscription | None = None
        self._consumer: str | None = None
        self._gen = 0
        self._dseq = 0
        self._active = True
        self._want_reset = False
        self._signal = anyio.Event()

    @property
    def consumer(self) -> str | None:
        """Name of the current server-side consumer (it changes on every reset)."""
        return self._consumer

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Create the consumer, then keep it ordered and alive until done or cancelled."""
        try:
            if not self.done:
                await self._create()
            task_status.started()
            while not self.done:
                timed_out = True
                with anyio.move_on_after(self.heartbeat_s * 2):
                    await self._signal.wait()
                    timed_out = False
                self._signal = anyio.Event()
                if self.done:
                    break
                # A full buffer holds our callback back, heartbeats included: that silence is ours.
                if timed_out and not self._active and not self._want_reset and not self.buffer.full:
                    log.warning("projection %s stream %s: silent for %.0fs; recreating the consumer",
                                self.name, self.stream, self.heartbeat_s * 2)
                    self._want_reset = True
                if self._want_reset:
                    try:
                        await self._reset()
                        self._want_reset = False
                    except Exception as exc:  # noqa: BLE001  (server away? the next round retries)
                        log.warning("projection %s stream %s: recreating the consumer failed: %s",
                                    self.name, self.stream, exc)
                self._active = False
        finally:
            with anyio.CancelScope(shield=True):
                await self._stop()
            self.buffer.wake()

    async def _create(self) -> None:
        self._gen += 1
        gen = self._gen
        inbox = self.nc.new_inbox()

        sub = await self.nc.subscribe(
            inbox, cb=partial(self._on_msg, gen), pending_msgs_limit=0, pending_bytes_limit=0
        )
        cfg = ConsumerConfig(
            deliver_subject=inbox,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.last_seq + 1,
            ack_policy=AckPolicy.NONE,
            max_deliver=1,
            flow_control=True,
            idle_heartbeat=self.heartbeat_s,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=max(30.0, self.heartbeat_s * 6),
            description=f"agentledger projection {self.name}",
        )
        if len(self.filters) == 1:
            cfg.filter_subject = self.filters[0]
        else:
            cfg.filter_subjects = list(self.filters)
        self._sub, self._dseq, self._active = sub, 0, True
        try:
            info = await self.js.add_consumer(self.stream, config=cfg)
        except BaseException:
            self._gen += 1
            self._sub = None
            await _unsubscribe(sub)
            raise
        self._consumer = info.name
        if self._dseq == 0:
            self.pending = info.num_pending or 0
            if self.bound is not None and not self.pending:
                self._request_finish()
        log.debug("projection %s stream %s: consumer %s from seq %d, %d pending",
                  self.name, self.stream, info.name, self.last_seq + 1, self.pending)

    async def _on_msg(self, gen: int, msg: Msg) -> None:
        """The hot path: check order and bound, append, and wait only when the buffer is full."""
        if gen != self._gen:
            return  # sent to a consumer we replaced or finished
        self._active = True
        hdrs = msg.headers
        if hdrs and not msg.data and hdrs.get("Status") == "100":
            await self._control(msg, hdrs)
            return
        t = msg.reply.split(".")
        o = 2 if len(t) == 9 else 4  # `$JS.ACK` v1 or v2 (domain, account hash) form
        sseq, dseq, ns, pending = int(t[o + 3]), int(t[o + 4]), int(t[o + 5]), int(t[o + 6])
        if dseq != self._dseq + 1:
            log.warning("projection %s stream %s: consumer sequence gap (%d after %d); resuming at %d",
                        self.name, self.stream, dseq, self._dseq, self.last_seq + 1)
            self._request_reset()
            return
        self._dseq = dseq
        bound = self.bound
        if bound is not None:
            if (bound.until_seq is not None and sseq > bound.until_seq) or (
                bound.until_ns is not None and ns > bound.until_ns
            ):
                self._request_finish()
                return
            if sseq >= bound.target or pending == 0:
                self._request_finish()
        self.last_seq = sseq
        self.pending = pending
        self.delivered += 1
        if self.buffer.append((self.stream, msg.subject, msg.data, sseq, ns, hdrs), pending == 0):
            await self.buffer.wait_space()

    async def _control(self, msg: Msg, hdrs: dict[str, str]) -> None:
        if msg.reply:  # flow-control request: everything before it is in the buffer now
            await self.nc.publish(msg.reply, b"")
            return
        if stalled := hdrs.get("Nats-Consumer-Stalled"):
            await self.nc.publish(stalled, b"")
        last = hdrs.get("Nats-Last-Consumer")
        if last is not None and int(last) != self._dseq:
            log.warning("projection %s stream %s: heartbeat says consumer seq %s, have %d; resetting",
                        self.name, self.stream, last, self._dseq)
            self._request_reset()

    def _request_reset(self) -> None:
        self._gen += 1  # ignore whatever the stale consumer still sends
        self._want_reset = True
        self._signal.set()

    def _request_finish(self) -> None:
        self._gen += 1
        self.done = True
        self.pending = 0
        self._signal.set()
        self.buffer.wake()

    async def _reset(self) -> None:
        await self._stop()
        self.buffer.discard(self.stream, self.last_seq)
        await self._create()

    async def _stop(self) -> None:
        self._gen += 1
        sub, self._sub = self._sub, None
        consumer, self._consumer = self._consumer, None
        if sub is not None:
            await _unsubscribe(sub)
        if consumer is not None and not self.nc.is_closed:
            try:
                await self.js.delete_consumer(self.stream, consumer)
            except Exception as exc:  # noqa: BLE001  (ephemeral: dropped after inactive_threshold)
                log.debug("projection %s: deleting consumer %s: %s", self.name, consumer, exc)


async def _unsubscribe(sub: Subscription) -> None:
    try:
        await sub.unsubscribe()
    except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError,
            nats.errors.BadSubscriptionError):
        pass
