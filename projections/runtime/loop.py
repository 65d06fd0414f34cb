"""The projector runtime: consumers -> batches -> decode -> apply + checkpoint in one transaction.

A projection module only says how events become rows (`apply`); this loop owns everything that
must be the same for every projection: where to resume, batching by size and time, rejects,
the transaction, the retry of a failing batch, lag, health and the batch span.

DuckDB work and decoding run in a worker thread so the event loop keeps receiving the next batch
while the previous one commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Tracer

from events.core.codec import decode, event_type
from events.core.errors import ValidationError
from events.core.meta import Meta
from events.core.redact import redact_payload, redact_text
from projections.runtime.buffer import Buffer, Raw
from projections.runtime.consumer import Bound, OrderedFeed
from projections.runtime.store import Batch, Reject, Store

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
MAX_LINKS = 64
BACKOFF_S = (0.2, 30.0)


class ProjectionFailed(Exception):
    """A bounded build (rebuild, replay) could not apply a valid event; nothing was skipped."""


# subject -> bound `decode` method of the msgspec decoder for its event type. Subjects repeat
# (one per agent and event name), so the subject grammar and the registry are consulted once per
# subject, not once per message; errors still come from `events.core.codec.decode`.
_DECODERS: dict[str, Callable[[bytes], Any]] = {}
_DECODERS_MAX = 100_000


def _remember(subject: str) -> None:
    if len(_DECODERS) >= _DECODERS_MAX:
        _DECODERS.clear()
    _DECODERS[subject] = msgspec.json.Decoder(event_type(subject)).decode


def _reject_reason(subject: str, data: bytes) -> str:
    try:
        decode(subject, data)
    except ValidationError as exc:
        return str(exc)
    return "undecodable payload"


class Prepared:
    """A decoded batch: events for `apply`, rejects, the checkpoint per stream, trace links."""

    __slots__ = ("checkpoints", "count", "events", "first_seq", "last_seq", "links", "rejects")

    def __init__(self, raw: list[Raw], name: str = "") -> None:
        events: Batch = []
        rejects: list[Reject] = []
        checkpoints: dict[str, int] = {}
        links: dict[tuple[int, int], Link] = {}
        decoders = _DECODERS
        fromtimestamp = datetime.fromtimestamp  # what events.core.meta.at_from_ns does, minus a call
        for stream, subject, data, seq, ns, headers in raw:
            at = fromtimestamp(ns / 1e9, UTC)
            try:
                decoder = decoders.get(subject)
                if decoder is None:
                    event = decode(subject, data)
                    _remember(subject)
                else:
                    event = decoder(data)
            except (ValidationError, msgspec.ValidationError, msgspec.DecodeError) as exc:
                error = str(exc) if isinstance(exc, ValidationError) else _reject_reason(subject, data)
                # refused by the schema, so nothing says a key in it is encrypted: keep no secret
                error = redact_text(error)
                rejects.append((stream, seq, subject, error, redact_payload(data), at))
                log.warning("projection %s rejects stream=%s seq=%d subject=%s: %s",
                            name, stream, seq, subject, error)
            else:
                events.append((Meta(seq=seq, subject=subject, at=at, stream=stream, headers=headers), event))
            checkpoints[stream] = seq
            if headers and "traceparent" in headers and len(links) < MAX_LINKS:
                ctx = trace.get_current_span(propagate.extract(headers)).get_span_context()
                if ctx.is_valid:
                    links.setdefault((ctx.trace_id, ctx.span_id), Link(ctx, {"agentledger.seq": seq}))
        self.events = events
        self.rejects = rejects
        self.checkpoints = checkpoints
        self.links = list(links.values())
        self.count = len(raw)
        self.first_seq = raw[0][3] if raw else 0
        self.last_seq = raw[-1][3] if raw else 0


class Runtime:
    """Runs one projection over one open Store until cancelled (or, when bounded, until done)."""

    def __init__(
        self,
        module: ModuleType,
        store: Store,
        nc: NATS,
        *,
        batch_size: int = 5000,
        batch_ms: int = 50,
        bounds: dict[str, Bound] | None = None,
        progress: Progress | None = None,
        tracer: Tracer | None = None,
        heartbeat_s: float = 5.0,
    ) -> None:
        self.module = module
        self.name: str = module.NAME
        self.store = store
        self.nc = nc
        self.buffer = Buffer(batch_size, batch_ms)
        self.bounds = bounds
        self.progress = progress
        self.tracer = tracer or trace.get_tracer(__name__)
        self.heartbeat_s = heartbeat_s
        self.feeds: list[OrderedFeed] = []
        self.checkpoints: dict[str, int] = {}
        self.healthy = True
        self.error: str | None = None
        self.last_batch_at: datetime | None = None
        self.events = 0
        self.committed = 0
        self.running = False
        self.advanced = anyio.Event()  # set (and replaced) after every commit and at the end

    def applied(self, after: dict[str, int]) -> bool:
        """Whether every `{stream: seq}` of `after` is in the read model (rejects count too)."""
        return all(self.checkpoints.get(stream, 0) >= seq for stream, seq in after.items())

    def _advance(self) -> None:
        self.advanced.set()
        self.advanced = anyio.Event()

    # -- health ----------------------------------------------------------------------------

    @property
    def lag(self) -> int:
        """Events on the streams not yet in the read model: pending at the last delivery plus
        delivered but not yet committed."""
        if not self.feeds:
            return 0
        delivered = sum(f.delivered for f in self.feeds)
        return sum(f.pending for f in self.feeds) + max(0, delivered - self.committed)

    def health(self) -> dict[str, Any]:
        lag = self.lag
        return {
            "healthy": self.healthy,
            "error": self.error,
            "lag": lag,
            "checkpoints": dict(self.checkpoints),
            "rejects": self.store.rejects,
            "caught_up": self.running and self.healthy and lag == 0,
            "last_batch_at": self.last_batch_at.isoformat() if self.last_batch_at else None,
        }

    # -- loop ------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> dict[str, int]:
        """Consume and apply; returns the checkpoints when a bounded run has caught up."""
        self.checkpoints = await anyio.to_thread.run_sync(self.store.checkpoints)
        self.feeds = [
            OrderedFeed(
                self.nc, stream, filters, self.checkpoints.get(stream, 0) + 1, self.buffer,
                bound=self.bounds.get(stream) if self.bounds is not None else None,
                heartbeat_s=self.heartbeat_s, name=self.name,
            )
            for stream, filters in self.module.SOURCES
        ]
        self.committed = 0
        log.info("projection %s resuming at %s", self.name, {f.stream: f.last_seq + 1 for f in self.feeds})
        async with anyio.create_task_group() as tg:
            for feed in self.feeds:
                await tg.start(feed.run)
            self.running = True
            task_status.started()
            try:
                await self._loop()
            finally:
                self.running = False
                self._advance()
            tg.cancel_scope.cancel()
        return dict(self.checkpoints)

    async def _loop(self) -> None:
        bounded = self.bounds is not None
        while True:
            if bounded and all(f.done for f in self.feeds):
                self.buffer.close()
            raw = await self.buffer.take()
            if not raw:
                if self.buffer.closed:
                    self._report_progress()
                    return
                continue
            await self._commit(raw)
            self._report_progress()

    async def _commit(self, raw: list[Raw]) -> None:
        """Decode and commit the batch; on failure stay on it, unhealthy, retrying with backoff."""
        first, last = raw[0][3], raw[-1][3]
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                batch = await anyio.to_thread.run_sync(self._commit_sync, raw)
                self.buffer.linger_s = time.monotonic() - started
            except Exception as exc:
                attempt += 1
                self.healthy = False
                self.error = f"{type(exc).__name__}: {exc} (seq {first}..{last})"
                if self.bounds is not None:
                    raise ProjectionFailed(f"projection {self.name}: {self.error}") from exc
                delay = min(BACKOFF_S[1], BACKOFF_S[0] * 2 ** min(attempt - 1, 16))
                if attempt == 1:
                    log.exception("projection %s stopped at seq %d..%d; retrying with backoff up to %.0fs",
                                  self.name, first, last, BACKOFF_S[1])
                else:
                    log.warning("projection %s still failing at seq %d..%d (attempt %d): %s",
                                self.name, first, last, attempt, exc)
                await anyio.sleep(delay)
                continue
            if not self.healthy:
                log.info("projection %s recovered at seq %d after %d attempts", self.name, last, attempt + 1)
            self.healthy, self.error = True, None
            self.checkpoints.update(batch.checkpoints)
            self._advance()
            self.committed += batch.count
            self.events += batch.count
            self.last_batch_at = datetime.now(UTC)
            return

    def _commit_sync(self, raw: list[Raw]) -> Prepared:
        """In a worker thread: decode, then apply + rejects + checkpoints in one transaction."""
        batch = Prepared(raw, self.name)
        attributes = {
            "projection": self.name, "batch.events": batch.count, "batch.rejects": len(batch.rejects),
            "batch.first_seq": batch.first_seq, "batch.last_seq": batch.last_seq,
        }
        with self.tracer.start_as_current_span("projector.batch", links=batch.links, attributes=attributes):
            self.store.commit(batch.events, batch.rejects, batch.checkpoints)
        return batch

    def _report_progress(self) -> None:
        if self.progress is None or self.bounds is None:
            return
        total = sum(_total(b) for b in self.bounds.values())
        if self.buffer.closed and not self.buffer.items:
            self.progress(total, total)
        else:
            done = sum(self.checkpoints.get(s, 0) for s in self.bounds)
            self.progress(min(done, total), total)


def _total(bound: Bound) -> int:
    if bound.until_seq is not None:
        return min(bound.target, bound.until_seq)
    return bound.target


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def until_bound(target: int, until: int | datetime | None) -> Bound:
    """The Bound of a stream whose last sequence is `target`, for an `until` seq or time."""
    if until is None:
        return Bound(target)
    if isinstance(until, datetime):
        if until.tzinfo is None:
            raise ValueError("until must be timezone-aware (UTC)")
        return Bound(target, until_ns=(until - _EPOCH) // timedelta(microseconds=1) * 1000)
    return Bound(target, until_seq=int(until))
