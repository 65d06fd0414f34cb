"""The gateway's in-memory fold of PROVIDERS: backend states, their keys, buckets and cooldown timers.

Every replica follows the whole stream with an ordered consumer and folds it with the domain's own
`evolve`, so a cooldown taken by one replica holds in all of them as soon as the event arrives.
What this replica decides itself (a 429 it observed, a recovery, the end of a cooldown) is appended
with optimistic concurrency and folded at once from the ack, like the tasks service does.

Keys are decrypted here, in memory only, when a backend is created or its key rotates. A key id
this keyring lacks is usually a `keys rotate` that rewrote the key file after this gateway started,
so the file is read again (`reload`), at most once per RELOAD_EVERY_S for each unknown key id,
also from the timer loop while a backend waits for its key. A backend whose key still cannot be
opened is logged (by id and key id, never the key), left out of routing and listed in
`key_errors` (shown by `/health` as a degraded proxy and by the admin API, where the backend can
be given a new key or deleted); the fold goes on. One bad record never stops the gateway.
Token buckets are local to the replica: each one limits what it sends itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial

import anyio
from aiohttp import ClientSession
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS

from events import providers
from events.core import codec
from events.core.client import EventClient
from events.core.errors import Conflict, EventError, Unavailable
from events.core.keyring import Keyring, KeyringError, UnknownKeyId, key_id_of
from events.core.meta import at_from_ns
from events.core.streams import stream_name
from events.core.subjects import domain_filter
from events.providers import routing
from projections.runtime.buffer import Buffer
from projections.runtime.consumer import OrderedFeed
from services.gateway.proxy.upstream import UpstreamPool
from services.gateway.proxy.usage_spool import UsageSpool
from services.settings import SettingsError

log = logging.getLogger(__name__)

STREAM = stream_name("providers")
APPEND_TRIES = 3
TIMER_MAX_S = 1.0
RELOAD_EVERY_S = 30.0

Reload = Callable[[], Keyring | None]


clock: Callable[[], datetime] = partial(datetime.now, UTC)


def now() -> datetime:
    """The time cooldowns and routing are decided at; `clock` is swappable so tests can live
    through 30 s ... 600 s cooldowns without sleeping (the proxy and the timers read it here)."""
    return clock()


class ProvidersFold:
    def __init__(self, nc: NATS, events: EventClient, keyring: Keyring | None,
                 reload: Reload | None = None) -> None:
        self.nc = nc
        self.events = events
        self.keyring = keyring
        self.reload = reload  # Settings.load_keyring: the key file as it is now
        self.keyring_reloads = 0
        self._reloaded: dict[str, float] = {}  # unknown key id -> monotonic time of its last reload
        self.backends: dict[str, providers.Backend] = {}
        self.seqs: dict[str, int] = {}
        self.limits: dict[str, routing.Limits] = {}
        self.folded = 0
        self.ready = asyncio.Event()
        self.cooldowns_started = 0  # read by the metrics
        self._keys: dict[str, tuple[str, str]] = {}  # backend id -> (token, plaintext)
        self.key_errors: dict[str, str] = {}  # live backend id -> why its key cannot be opened
        self._changed = asyncio.Event()
        self._buffer = Buffer(batch_size=1, batch_ms=1, capacity=4096)

    # -- reading -------------------------------------------------------------------------------

    def routable(self) -> list[providers.Backend]:
        """Live backends whose key this replica holds."""
        return [b for b in self.backends.values() if b.live and b.id in self._keys]

    def api_key(self, backend_id: str) -> str | None:
        entry = self._keys.get(backend_id)
        return None if entry is None else entry[1]

    def plan(self, model: str, at: datetime) -> routing.Routed | routing.Exhausted:
        return routing.plan(self.routable(), self.limits, model, at)

    def claim(self, backend: providers.Backend, emergency: bool) -> bool:
        clock = time.time()
        ok, lim = routing.claim(routing.limits_for(backend, clock, self.limits.get(backend.id)), emergency, clock)
        self.limits[backend.id] = lim
        return ok

    # -- following the stream ------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow PROVIDERS from seq 1 (retrying while the stream is missing) and run the timers."""
        task_status.started()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._apply_loop)
            tg.start_soon(self._timer_loop)
            while True:
                try:
                    target = (await self.nc.jetstream().stream_info(STREAM)).state.last_seq
                    feed = OrderedFeed(self.nc, STREAM, [domain_filter("providers")], 1, self._buffer,
                                       name="gateway-providers")
                    await tg.start(feed.run)
                    break
                except Exception as exc:  # noqa: BLE001  (no stream yet, NATS away: retry)
                    log.warning("gateway: cannot follow %s yet: %s", STREAM, exc)
                    await anyio.sleep(1.0)
            while self.folded < target:
                await anyio.sleep(0.01)
            self._check_keys()
            self.ready.set()
            log.info("gateway: providers fold ready, %d backends at seq %d", len(self.backends), self.folded)

    def _check_keys(self) -> None:
        """At start: one line naming every backend left out of routing; the gateway starts anyway."""
        if self.key_errors:
            log.error("gateway: %d backends left out of routing until their key is fixed or they are "
                      "deleted (admin API): %s", len(self.key_errors), "; ".join(sorted(self.key_errors.values())))

    async def _apply_loop(self) -> None:
        while True:
            for _stream, subject, data, seq, ns, _headers in await self._buffer.take():
                self._apply_raw(subject, data, seq, ns)
                self.folded = seq

    def _apply_raw(self, subject: str, data: bytes, seq: int, ns: int) -> None:
        parts = subject.split(".")
        if len(parts) != 3:
            return
        backend_id = parts[1]
        if self.seqs.get(backend_id, 0) >= seq:
            return  # folded already from our own ack
        self.seqs[backend_id] = seq
        try:
            event = codec.decode(subject, data)
        except EventError as exc:
            log.debug("%s seq %d: undecodable, skipped: %s", subject, seq, exc)
            return
        self._evolve(backend_id, event, at_from_ns(ns))  # type: ignore[arg-type]

    def _evolve(self, backend_id: str, event: providers.ProviderEvent, at: datetime) -> None:
        state = self.backends.get(backend_id) or providers.initial_state(backend_id)
        state, reason = providers.evolve(state, event, at)
        if reason is not None:
            log.debug("providers.%s: no-op: %s", backend_id, reason)
            return
        self.backends[backend_id] = state
        if isinstance(event, providers.CooldownStarted):
            self.cooldowns_started += 1
        self._refresh_key(state)
        self._changed.set()

    def _refresh_key(self, state: providers.Backend) -> None:
        if not state.live:
            self._keys.pop(state.id, None)
            self.key_errors.pop(state.id, None)
            return
        held = self._keys.get(state.id)
        if held is not None and held[0] == state.api_key:
            return
        try:
            key_id = key_id_of(state.api_key)
            if self.keyring is None or key_id not in self.keyring.key_ids:
                self._reload_for(key_id)
            if self.keyring is None:
                raise UnknownKeyId(key_id, [])
            self._keys[state.id] = (state.api_key, self.keyring.decrypt(state.api_key, aad=state.id))
            self.key_errors.pop(state.id, None)
        except KeyringError as exc:
            self._keys.pop(state.id, None)
            self.key_errors[state.id] = f"backend {state.id}: {exc}"
            log.error("gateway: backend %s left out of routing: %s", state.id, exc)

    def _reload_due(self, key_id: str) -> bool:
        last = self._reloaded.get(key_id)
        return self.reload is not None and (last is None or time.monotonic() - last >= RELOAD_EVERY_S)

    def _reload_for(self, key_id: str) -> None:
        """Read the key file again for `key_id` unless that was done within RELOAD_EVERY_S."""
        if self.reload is None or not self._reload_due(key_id):
            return
        self._reloaded[key_id] = time.monotonic()
        self.keyring_reloads += 1
        try:
            ring = self.reload()
        except (SettingsError, KeyringError, OSError) as exc:  # keep the ring we have
            log.error("gateway: cannot reload the keyring for key id %s: %s", key_id, exc)
            return
        if ring is not None:
            self.keyring = ring
            log.info("gateway: keyring reloaded for key id %s: key ids %s, current %s",
                     key_id, ", ".join(ring.key_ids), ring.current)

    def _retry_keys(self) -> None:
        """Backends still waiting for a key id get another reload once its interval is over."""
        for b in list(self.backends.values()):
            if not b.live or not b.api_key or b.id in self._keys or b.key_id is None:
                continue
            unknown = self.keyring is None or b.key_id not in self.keyring.key_ids
            if unknown and self._reload_due(b.key_id):
                self._refresh_key(b)

    # -- our own decisions ---------------------------------------------------------------------

    async def observe(self, backend_id: str, cmd: providers.ProviderCommand) -> list[providers.ProviderEvent]:
        """Decide on what this replica saw and append it with OCC; fold it at once."""
        for _ in range(APPEND_TRIES):
            state = self.backends.get(backend_id) or providers.initial_state(backend_id)
            at = now()
            try:
                emitted = providers.decide(cmd, state, at)
            except providers.ProviderRuleError as exc:
                log.debug("providers.%s: %s", backend_id, exc)
                return []
            if not emitted:
                return []
            try:
                seqs = await self.events.append(backend_id, emitted, expected_seq=self.seqs.get(backend_id, 0))
            except Conflict as exc:
                await self._catch_up(backend_id, exc.last_seq)
                continue
            except Unavailable as exc:
                log.warning("providers.%s: cannot record %s (%s); honoured by this replica only",
                            backend_id, ", ".join(e.name for e in emitted), exc)
                for e in emitted:
                    self._evolve(backend_id, e, at)
                return emitted
            self.apply_own(backend_id, emitted, seqs, at)
            return emitted
        log.warning("providers.%s: gave up recording after %d conflicts", backend_id, APPEND_TRIES)
        return []

    def apply_own(self, backend_id: str, emitted: Iterable[providers.ProviderEvent], seqs: Iterable[int],
                  at: datetime) -> None:
        for event, seq in zip(emitted, seqs, strict=True):
            if self.seqs.get(backend_id, 0) < seq:
                self.seqs[backend_id] = seq
                self._evolve(backend_id, event, at)

    async def _catch_up(self, backend_id: str, last_seq: int | None, timeout: float = 2.0) -> None:
        with anyio.move_on_after(timeout):
            while last_seq is not None and self.seqs.get(backend_id, 0) < last_seq:
                await anyio.sleep(0.005)

    # -- time ----------------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        """Publish `cooldown_ended` when a cooldown expires; every replica may, the msg id dedupes."""
        while True:
            at = now()
            wait = TIMER_MAX_S
            self._retry_keys()
            for b in list(self.backends.values()):
                for event in providers.due(b, at):
                    await self._end(b.id, event, at)
                if b.live and b.cooldown_until is not None and b.cooldown_until > at:
                    wait = min(wait, (b.cooldown_until - at).total_seconds())
            self._changed.clear()
            with anyio.move_on_after(max(wait, 0.001)):
                await self._changed.wait()

    async def _end(self, backend_id: str, event: providers.ProviderEvent, at: datetime) -> None:
        until = getattr(event, "until", None)
        msg_id = f"cooldown_end:{backend_id}:{int(until.timestamp() * 1e6) if until else 0}"
        try:
            seqs = await self.events.append(backend_id, [event], expected_seq=None, msg_ids=[msg_id])
        except EventError as exc:
            log.warning("providers.%s: cannot record the end of its cooldown yet: %s", backend_id, exc)
            await anyio.sleep(TIMER_MAX_S)
            return
        self.apply_own(backend_id, [event], seqs, at)


# -- what the proxy handlers reach through one app key ----------------------------------------


class ProxyContext:
    """The fold, the upstream connections (aiohttp for streams and probes, the lean pool for the
    rest), the usage spool and the client key digests."""

    def __init__(self, fold: ProvidersFold, session: ClientSession, spool: UsageSpool,
                 digests: tuple[bytes, ...], upstream: UpstreamPool) -> None:
        self.fold = fold
        self.session = session
        self.upstream = upstream
        self.spool = spool
        self.digests = digests
