"""The publishing SDK: the only module of `events` that does I/O.

Every write waits for the JetStream ack before it reports success. Bulk writes are pipelined
through a bounded in-flight window (JetStream's async publish) so that throughput is bounded by
the server, not by round trips. Optimistic appends use the expected-last-subject-sequence with a
wildcard `-Subject` so that "the aggregate has not moved since I read it" is checked by the server.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Self

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from opentelemetry import propagate, trace

from events.core import codec
from events.core.errors import Conflict, EventError, Forbidden, Unavailable, ValidationError
from events.core.inbox import inbox_for
from events.core.registry import Event
from events.core.subjects import aggregate_filter, build

MAX_BATCH = 1000
H_MSG_ID = "Nats-Msg-Id"
H_EXPECTED = "Nats-Expected-Last-Subject-Sequence"
H_EXPECTED_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
H_BATCH_ID = "Nats-Batch-Id"
H_BATCH_SEQ = "Nats-Batch-Sequence"
H_BATCH_COMMIT = "Nats-Batch-Commit"
H_CAUSATION = "Agl-Causation"
H_ACTOR = "Agl-Actor"
_WRONG_LAST = re.compile(r"wrong last sequence: (\d+)")
_CONFLICT_CODES = {10071}
_VIOLATION = re.compile(r'permissions violation for publish to "([^"]+)"', re.IGNORECASE)


class Refused(EventError):
    """JetStream refused the write for a reason other than a conflict (size, limits, config)."""


class Outgoing(msgspec.Struct, frozen=True):
    """A validated, encoded message ready to publish."""

    subject: str
    payload: bytes
    headers: dict[str, str] | None = None


def prepare(
    aggregate_id: str,
    event: Event,
    *,
    msg_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Outgoing:
    subject = build(event.domain, aggregate_id, event.name)
    return Outgoing(subject, codec.encode_checked(event), _headers(headers, msg_id))


def prepare_json(
    subject: str, data: Any, *, msg_id: str | None = None, headers: dict[str, str] | None = None,
    where: str = "$.data",
) -> Outgoing:
    """Validate an edge payload strictly (unknown fields refused) and re-encode it canonically."""
    event = codec.decode_strict(subject, data, where)
    return Outgoing(subject, codec.encode(event), _headers(headers, msg_id))


def _headers(headers: dict[str, str] | None, msg_id: str | None) -> dict[str, str] | None:
    if msg_id is None:
        return headers
    if not msg_id or len(msg_id) > 256:
        raise ValidationError("msg_id must be 1..256 characters", field="$.msg_id")
    return {**(headers or {}), H_MSG_ID: msg_id}


def trace_headers() -> dict[str, str]:
    """W3C trace context of the current span, for the next hop to continue the trace."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def translate(exc: BaseException, subject: str = "") -> EventError:
    """Map nats-py failures onto the three errors callers handle."""
    if isinstance(exc, EventError):
        return exc
    if isinstance(exc, nats.js.errors.APIError):
        desc = exc.description or str(exc)
        if exc.err_code in _CONFLICT_CODES:
            m = _WRONG_LAST.search(desc)
            return Conflict(f"{subject or 'append'}: {desc}", int(m.group(1)) if m else None)
        if exc.code == 503:
            return Unavailable(f"JetStream unavailable for {subject}: {desc}")
        return Refused(f"JetStream refused {subject}: {desc} (err_code {exc.err_code})")
    if isinstance(exc, (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError)):
        return Unavailable(f"no stream answers for subject {subject!r} (streams not created?)")
    if isinstance(exc, (nats.errors.TimeoutError, asyncio.TimeoutError, TimeoutError)):
        return Unavailable(f"timed out waiting for the JetStream ack of {subject}; the write may or may not be stored")
    if isinstance(exc, nats.errors.Error):
        return Unavailable(f"NATS error publishing {subject}: {exc}")
    return Unavailable(f"publishing {subject} failed: {exc!r}")


class Append(NamedTuple):
    """One event of an optimistic append: `expected_seq` is the aggregate's last seq seen
    (0 for a new aggregate, None for no check)."""

    aggregate_id: str
    event: Event
    expected_seq: int | None = None
    msg_id: str | None = None


class PublishError(Unavailable):
    """Some messages of a pipelined publish were not acked; `seqs[i]` is None for those."""

    def __init__(self, message: str, seqs: list[int | None], errors: list[EventError | None]) -> None:
        super().__init__(message)
        self.seqs = seqs
        self.errors = errors


def _settle(
    subject: str, fut: asyncio.Future[Any], seqs: list[int | None], errors: list[EventError | None]
) -> None:
    if not fut.done() or fut.cancelled():
        fut.cancel()
        seqs.append(None)
        errors.append(Unavailable(f"no JetStream ack for {subject} in time; it may or may not be stored"))
    elif (exc := fut.exception()) is not None:
        seqs.append(None)
        errors.append(translate(exc, subject))
    else:
        seqs.append(fut.result().seq)
        errors.append(None)


def login(credentials: str | Path) -> dict[str, str]:
    """`user` and `password` from an agentledger credentials file, for `nats.connect`."""
    path = Path(credentials).expanduser()
    try:
        data = json.loads(path.read_text())
        return {"user": str(data["user"]), "password": str(data["password"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Unavailable(f"cannot read credentials {path}: {exc}") from None


def _redact(servers: str | list[str]) -> str:
    """Server URLs without user:password, fit for an error message."""
    urls = servers.split(",") if isinstance(servers, str) else servers
    return ",".join(re.sub(r"//[^@/]*@", "//", u.strip()) for u in urls)


class EventClient:
    """Async SDK over one NATS connection.

    `window` bounds the un-acked pipelined publishes, so a producer that outruns the server waits
    instead of growing memory without limit.
    """

    def __init__(self, nc: NATS, *, window: int = 1024, timeout: float = 5.0) -> None:
        self.nc = nc
        self.timeout = timeout
        self.window = window
        self.js = nc.jetstream(timeout=timeout, publish_async_max_pending=window)
        self.denied: set[str] = set()  # subjects the server refused (filled when we connected)

    @classmethod
    async def connect(
        cls, servers: str | list[str] = "nats://127.0.0.1:4222", *,
        credentials: str | Path | None = None, **kwargs: Any,
    ) -> EventClient:
        """`credentials`: the JSON file `agentledger agents add` wrote (user and password).
        `servers`: one URL, a list, or a cluster's URLs comma-separated (`AGENTLEDGER_NATS_URL`)."""
        if isinstance(servers, str):
            servers = [s.strip() for s in servers.split(",")]
        window = kwargs.pop("window", 1024)
        timeout = kwargs.pop("timeout", 5.0)
        if credentials is not None:
            kwargs.update(login(credentials))
        kwargs.setdefault("inbox_prefix", inbox_for(servers, kwargs.get("user")))  # replies are private
        denied: set[str] = set()
        user_cb = kwargs.pop("error_cb", None)

        async def on_error(exc: Exception) -> None:
            # nats-server answers a publish it refuses with -ERR, never with an ack: remember the
            # subject so the publish waiting for that ack says why instead of timing out blindly
            if m := _VIOLATION.search(str(exc)):
                denied.add(m.group(1).lower())
            if user_cb is not None:
                await user_cb(exc)

        try:
            nc = await nats.connect(servers, error_cb=on_error, **kwargs)
        except Exception as exc:
            raise Unavailable(f"cannot connect to NATS at {_redact(servers)}: {exc}") from exc
        client = cls(nc, window=window, timeout=timeout)
        client.denied = denied
        return client

    async def close(self) -> None:
        """Drain (what was sent gets its acks) when connected; a connection that is reconnecting
        (the server went away, or closed it: credentials revoked) has nothing to drain: closed."""
        nc = self.nc
        if nc.is_closed:
            return
        if nc.is_connected:
            await nc.drain()
        else:
            await nc.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- facts ---------------------------------------------------------------------------

    async def publish(
        self, aggregate_id: str, event: Event, *, msg_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> int:
        """Publish one fact and return its stream sequence once JetStream has acked it."""
        return await self.send(prepare(aggregate_id, event, msg_id=msg_id, headers=headers))

    async def send(self, out: Outgoing) -> int:
        """Publish one prepared fact with the current trace context; its sequence once acked."""
        return await self._publish(out.subject, out.payload, {**trace_headers(), **(out.headers or {})} or None)

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str] | None) -> int:
        try:
            ack = await self.js.publish(subject, payload, headers=headers)
        except Exception as exc:
            if subject.lower() in self.denied:
                raise Forbidden(
                    f"NATS refused {subject}: permissions violation (these credentials may not "
                    "publish it; see `agentledger policy`)"
                ) from exc
            raise translate(exc, subject) from exc
        return ack.seq

    async def publish_many(self, items: Iterable[Outgoing]) -> list[int]:
        """Pipelined publish: all in flight within the window, all acked before returning.

        Acks are settled as they arrive, oldest first, so memory stays bounded by the window.
        Raises PublishError listing which ones failed (an ack not seen within `timeout` counts as
        failed: it may or may not be stored); with msg ids a retry is safe (deduplicated).
        """
        tracing = trace_headers()
        pending: deque[tuple[str, asyncio.Future[Any]]] = deque()
        seqs: list[int | None] = []
        errors: list[EventError | None] = []
        stopped: EventError | None = None
        subject = ""
        try:
            for out in items:
                subject = out.subject
                headers = {**tracing, **out.headers} if out.headers else (tracing or None)
                if len(pending) >= self.window:  # keeps nats-py's own window from ever blocking
                    await asyncio.wait([pending[0][1]], timeout=self.timeout)
                    if not pending[0][1].done():
                        raise Unavailable(f"no JetStream ack in {self.timeout:.1f}s; window of {self.window} full")
                pending.append((subject, await self.js.publish_async(subject, out.payload, headers=headers)))
                while pending and pending[0][1].done():
                    _settle(*pending.popleft(), seqs, errors)
        except Exception as exc:  # noqa: BLE001  (any failure stops sending; what was sent is still accounted for)
            stopped = translate(exc, subject)
        if pending:
            await asyncio.wait([f for _, f in pending], timeout=self.timeout)
            while pending:
                _settle(*pending.popleft(), seqs, errors)
        failed = [e for e in errors if e is not None]
        if stopped is not None or failed:
            first = failed[0] if failed else stopped
            raise PublishError(
                f"{len(failed)} of {len(seqs)} sent publishes failed"
                f"{'; sending stopped: ' + str(stopped) if stopped else ''}; first: {first}",
                seqs, errors,
            )
        return seqs  # type: ignore[return-value]

    # -- optimistic appends --------------------------------------------------------------

    async def append(
        self,
        aggregate_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int | None,
        msg_ids: Sequence[str | None] | None = None,
        headers: dict[str, str] | None = None,
    ) -> list[int]:
        """Append events of one aggregate, all or nothing.

        `expected_seq` is the last sequence of this aggregate the caller has seen (0 for a new
        one, None for no check). Several events go as one atomic batch. A lost race raises
        Conflict with the aggregate's actual last sequence.
        """
        ids = list(msg_ids) if msg_ids is not None else [None] * len(events)
        if len(ids) != len(events):
            raise ValidationError("msg_ids must match events one to one", field="$.msg_ids")
        return await self.append_batch(
            [Append(aggregate_id, e, expected_seq, i) for e, i in zip(events, ids, strict=True)],
            headers=headers,
        )

    async def append_batch(self, entries: Sequence[Append], *, headers: dict[str, str] | None = None) -> list[int]:
        """Append events of several aggregates of one stream as one atomic batch.

        A decision that touches more than one aggregate (a parent task and its new fix subtasks)
        lands entirely or not at all. The first entry of each aggregate carries its expectation;
        JetStream checks every one against the stream as it was before the batch.
        """
        if not entries:
            return []
        if len(entries) > MAX_BATCH:
            raise ValidationError(f"at most {MAX_BATCH} events per atomic append", field="$.events")
        if len({e.event.domain for e in entries}) != 1:
            raise ValidationError("an atomic append holds events of one domain", field="$.events")
        base = {**trace_headers(), **(headers or {})}
        outs: list[Outgoing] = []
        checked: set[str] = set()
        for e in entries:
            h = dict(base)
            if e.expected_seq is not None and e.aggregate_id not in checked:
                checked.add(e.aggregate_id)
                h[H_EXPECTED] = str(e.expected_seq)
                h[H_EXPECTED_SUBJECT] = aggregate_filter(e.event.domain, e.aggregate_id)
            outs.append(prepare(e.aggregate_id, e.event, msg_id=e.msg_id, headers=h or None))
        if len(outs) == 1:  # the trace context is in `base` already
            return [await self._publish(outs[0].subject, outs[0].payload, outs[0].headers)]
        return await self._atomic(outs)

    async def _atomic(self, outs: list[Outgoing]) -> list[int]:
        batch_id = uuid.uuid4().hex
        last = len(outs)
        subject = outs[0].subject
        try:
            for n, out in enumerate(outs, 1):
                h = {**(out.headers or {}), H_BATCH_ID: batch_id, H_BATCH_SEQ: str(n)}
                if n < last:
                    await self.nc.publish(out.subject, out.payload, headers=h)
                else:
                    h[H_BATCH_COMMIT] = "1"
                    msg = await self.nc.request(out.subject, out.payload, timeout=self.timeout, headers=h)
        except Exception as exc:
            raise translate(exc, subject) from exc
        reply = msgspec.json.decode(msg.data) if msg.data else {}
        if err := reply.get("error"):
            api = nats.js.errors.APIError(
                code=err.get("code"), err_code=err.get("err_code"), description=err.get("description")
            )
            raise translate(api, subject)
        if reply.get("count") != last or "seq" not in reply:
            raise Unavailable(f"unexpected atomic batch ack for {subject}: {reply}")
        end = int(reply["seq"])
        return list(range(end - last + 1, end + 1))


async def barrier(nc: NATS, timeout: float) -> None:
    """Return once the server has processed everything this connection sent before.

    Not `nc.flush()`: nats-py 2.16 writes its PING straight to the socket, ahead of SUBs still
    queued, so the PONG can come back before the server knows our subscriptions (and a request
    right after `started` meets "no responders"). Our own message on a fresh inbox travels the
    same queue as the SUBs, so its arrival proves they were processed.
    """
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, max_msgs=1)
    await nc.publish(inbox, b"")
    await sub.next_msg(timeout=timeout)
