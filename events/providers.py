"""The providers aggregate: one upstream LLM backend, its configuration, cooldown and health.

Invariants:
- the backend id is the aggregate id (subject), never in the payload;
- the API key is only ever an encrypted token `<key_id>:<nonce>:<ciphertext>` (events.keyring);
  an event carrying anything else is refused by the schema, so no plaintext reaches the stream;
- a backend is created once; a deleted backend stays deleted: later events are no-ops;
- a 429 is always recorded (`rate_limited`); the cooldown it starts lasts the upstream
  `Retry-After` when given, else 30 s x 2^(n-1) capped at 600 s, n being the consecutive 429s
  (the arithmetic and the header parser are in events.cooldowns);
- a new 429 never shortens an active cooldown: it extends it or starts nothing;
- 429s during an active cooldown belong to the same episode: they do not raise n (a burst of
  in-flight requests answered 429 together would otherwise jump straight to 600 s) and only an
  upstream Retry-After reaching past the current end extends the cooldown;
- n survives `cooldown_ended` (so repeated 429s grow 30, 60, 120 ...) and returns to 0 only with
  `recovered`, decided from the first success after a 429;
- routing reads `cooldown_until` against its own `now`, so it never waits for `cooldown_ended`;
  that event only records the end (`due(state, now)` says when to emit it);
- `probe_changed` records changes of the probe's verdict only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, ClassVar, Literal, assert_never

import msgspec
from msgspec.structs import replace

from events.cooldowns import backoff_s, header_summary, parse_retry_after
from events.keyring import TOKEN_PATTERN, is_token
from events.registry import Event

Pool = Literal["primary", "fallback"]
Probe = Literal["healthy", "degraded", "down"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
Url = Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$", max_length=2000)]
EncryptedKey = Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN, max_length=8192)]
Rpm = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Timeout = Annotated[float, msgspec.Meta(gt=0, le=3600)]
PerToken = Annotated[float, msgspec.Meta(ge=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class Cost(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Price per token (not per million), in the account's currency."""

    input: PerToken = 0.0
    output: PerToken = 0.0


class ModelMapping(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    native_id: Name
    cost: Cost = Cost()


Mappings = dict[Name, ModelMapping]


# --- events ---------------------------------------------------------------------------------


class ProviderEvent(Event, frozen=True, kw_only=True):
    domain: ClassVar[str] = "providers"


class BackendCreated(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "created"
    backend_name: Name = msgspec.field(name="name")
    label: Text = ""
    api_base_url: Url
    api_key: EncryptedKey
    pool: Pool = "primary"
    enabled: bool = True
    rpm_limit: Rpm = 40
    timeout_seconds: Timeout = 120.0
    model_mappings: Mappings = msgspec.field(default_factory=dict)


class BackendUpdated(ProviderEvent, frozen=True, kw_only=True):
    """Only the fields given change; None means "leave as it is". Keys change by `key_rotated`."""

    name: ClassVar[str] = "updated"
    backend_name: Name | None = msgspec.field(default=None, name="name")
    label: Text | None = None
    api_base_url: Url | None = None
    pool: Pool | None = None
    enabled: bool | None = None
    rpm_limit: Rpm | None = None
    timeout_seconds: Timeout | None = None
    model_mappings: Mappings | None = None


class BackendDeleted(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "deleted"
    reason: Text | None = None


class KeyRotated(ProviderEvent, frozen=True, kw_only=True):
    """A new token: the same key re-encrypted under a newer key id, or a replaced key."""

    name: ClassVar[str] = "key_rotated"
    api_key: EncryptedKey
    reason: Literal["rotation", "replaced"] = "rotation"


class RateLimited(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "rate_limited"
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] = 429
    model: Text | None = None
    retry_after_s: Annotated[float, msgspec.Meta(ge=0)] | None = None  # None: header absent
    headers: dict[str, Text] = msgspec.field(default_factory=dict)  # summary, see HEADER_SUMMARY
    consecutive: Count | None = None  # n after this 429, as decided; None from raw publishers


class CooldownStarted(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "cooldown_started"
    until: datetime
    length_s: Annotated[float, msgspec.Meta(ge=0)]
    reason: Literal["retry_after", "backoff"] = "backoff"
    consecutive: Annotated[int, msgspec.Meta(ge=1)] = 1


class CooldownEnded(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "cooldown_ended"
    until: datetime | None = None  # the end it records: a stale end cannot close a newer cooldown
    reason: Literal["expired"] = "expired"


class Recovered(ProviderEvent, frozen=True, kw_only=True):
    """A success after 429s: the backoff starts again from 30 s."""

    name: ClassVar[str] = "recovered"
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] = 200


class ProbeChanged(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "probe_changed"
    state: Probe
    previous: Probe | None = None
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] | None = None
    error: Text | None = None


ProviderEvents = (
    BackendCreated
    | BackendUpdated
    | BackendDeleted
    | KeyRotated
    | RateLimited
    | CooldownStarted
    | CooldownEnded
    | Recovered
    | ProbeChanged
)


# --- commands -------------------------------------------------------------------------------


class Create(msgspec.Struct, frozen=True, kw_only=True):
    event: BackendCreated


class Update(msgspec.Struct, frozen=True, kw_only=True):
    event: BackendUpdated


class Delete(msgspec.Struct, frozen=True, kw_only=True):
    reason: str | None = None


class RotateKey(msgspec.Struct, frozen=True, kw_only=True):
    api_key: str  # an encrypted token, never the plaintext
    reason: Literal["rotation", "replaced"] = "rotation"


class ObserveRateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """An upstream answered 429: `headers` as received (any case); `now` comes to decide."""

    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    status: int = 429
    model: str | None = None


class ObserveSuccess(msgspec.Struct, frozen=True, kw_only=True):
    status: int = 200


class ObserveProbe(msgspec.Struct, frozen=True, kw_only=True):
    state: Probe
    status: int | None = None
    latency_ms: float | None = None
    error: str | None = None


ProviderCommand = (
    Create | Update | Delete | RotateKey | ObserveRateLimit | ObserveSuccess | ObserveProbe
)


# --- state ----------------------------------------------------------------------------------


class Backend(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    created: bool = False
    deleted: bool = False
    name: str = ""
    label: str = ""
    api_base_url: str = ""
    api_key: str = ""  # encrypted token; decrypt only in the gateway's memory
    pool: Pool = "primary"
    enabled: bool = True
    rpm_limit: int = 40
    timeout_seconds: float = 120.0
    model_mappings: dict[str, ModelMapping] = msgspec.field(default_factory=dict)
    cooldown_until: datetime | None = None  # None when no cooldown is open
    cooldown_started_at: datetime | None = None
    consecutive_429s: int = 0
    last_rate_limited_at: datetime | None = None
    probe: Probe = "healthy"
    probe_since: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.created and not self.deleted

    @property
    def key_id(self) -> str | None:
        return self.api_key.split(":", 1)[0] if self.api_key else None

    def cooling(self, now: datetime) -> bool:
        return self.cooldown_until is not None and now < self.cooldown_until

    def remaining_s(self, now: datetime) -> float:
        """Seconds of cooldown left at `now` (0 when none)."""
        if self.cooldown_until is None:
            return 0.0
        return max(0.0, (self.cooldown_until - now).total_seconds())


# --- errors ---------------------------------------------------------------------------------


class ProviderRuleError(Exception):
    """Root of the providers rules; the message names the backend."""


class AlreadyExists(ProviderRuleError):
    pass


class NotFound(ProviderRuleError):
    pass


class NotEncrypted(ProviderRuleError):
    """A key that is not a keyring token: refusing it keeps plaintext out of the stream."""


# --- what time makes due ---------------------------------------------------------------------


def due(state: Backend, now: datetime) -> list[ProviderEvent]:
    """Events time makes due at `now`: the end of an expired cooldown.

    Every replica may call this; the writer should publish with Nats-Msg-Id
    `cooldown_end:<backend>:<until>` so only one `cooldown_ended` is stored.
    """
    if state.live and state.cooldown_until is not None and now >= state.cooldown_until:
        return [CooldownEnded(until=state.cooldown_until)]
    return []


# --- decider --------------------------------------------------------------------------------

_CONFIG_FIELDS = (
    "label",
    "api_base_url",
    "pool",
    "enabled",
    "rpm_limit",
    "timeout_seconds",
    "model_mappings",
)


def initial_state(backend_id: str) -> Backend:
    return Backend(id=backend_id)


def _rate_limited(cmd: ObserveRateLimit, state: Backend, now: datetime) -> list[ProviderEvent]:
    retry_after = parse_retry_after(cmd.headers, now)
    cooling = state.cooling(now)
    n = state.consecutive_429s if cooling else state.consecutive_429s + 1
    n = max(n, 1)
    noted = RateLimited(
        status=cmd.status,
        model=cmd.model,
        retry_after_s=retry_after,
        headers=header_summary(cmd.headers),
        consecutive=n,
    )
    if cooling and retry_after is None:
        return [noted]  # same episode: the backoff already running stands
    length = retry_after if retry_after is not None else backoff_s(n)
    until = now + timedelta(seconds=length)
    if length <= 0 or (state.cooldown_until is not None and until <= state.cooldown_until):
        return [noted]  # never shortens an active cooldown
    reason: Literal["retry_after", "backoff"] = (
        "retry_after" if retry_after is not None else "backoff"
    )
    return [noted, CooldownStarted(until=until, length_s=length, reason=reason, consecutive=n)]


def decide(cmd: ProviderCommand, state: Backend, now: datetime) -> list[ProviderEvent]:
    if not isinstance(cmd, Create) and not state.live:
        raise NotFound(f"backend {state.id} {'was deleted' if state.deleted else 'does not exist'}")
    match cmd:
        case Create(event=ev):
            if state.created:
                raise AlreadyExists(f"backend {state.id} already exists")
            return [ev]
        case Update(event=ev):
            same = all(getattr(ev, f) in (None, getattr(state, f)) for f in _CONFIG_FIELDS)
            if same and ev.backend_name in (None, state.name):
                return []
            return [ev]
        case Delete(reason=reason):
            return [BackendDeleted(reason=reason)]
        case RotateKey(api_key=token, reason=reason):
            if not is_token(token):
                raise NotEncrypted(f"backend {state.id}: the key must be an encrypted token")
            return [] if token == state.api_key else [KeyRotated(api_key=token, reason=reason)]
        case ObserveRateLimit():
            return _rate_limited(cmd, state, now)
        case ObserveSuccess(status=status):
            if state.consecutive_429s == 0 or state.cooling(now):
                return []
            return [Recovered(status=status)]
        case ObserveProbe(state=probe, status=status, latency_ms=latency, error=error):
            if probe == state.probe:
                return []
            return [
                ProbeChanged(
                    state=probe,
                    previous=state.probe,
                    status=status,
                    latency_ms=latency,
                    error=error,
                )
            ]
        case _:
            assert_never(cmd)


def evolve(state: Backend, event: ProviderEvent, at: datetime) -> tuple[Backend, str | None]:
    """Fold one event; returns the new state and, when the event changed nothing, why."""
    if not isinstance(event, BackendCreated) and not state.live:
        return state, f"backend {state.id} {'was deleted' if state.deleted else 'does not exist'}"
    match event:
        case BackendCreated():
            if state.created:
                return state, f"backend {state.id} already exists"
            return replace(
                state,
                created=True,
                created_at=at,
                updated_at=at,
                name=event.backend_name,
                api_key=event.api_key,
                **{f: getattr(event, f) for f in _CONFIG_FIELDS},
            ), None
        case BackendUpdated():
            changes = {f: v for f in _CONFIG_FIELDS if (v := getattr(event, f)) is not None}
            if event.backend_name is not None:
                changes["name"] = event.backend_name
            return replace(state, updated_at=at, **changes), None
        case BackendDeleted():
            return replace(state, deleted=True, updated_at=at), None
        case KeyRotated():
            return replace(state, api_key=event.api_key, updated_at=at), None
        case RateLimited():
            n = event.consecutive
            if n is None:
                n = state.consecutive_429s + (0 if state.cooling(at) else 1)
            return replace(state, consecutive_429s=n, last_rate_limited_at=at), None
        case CooldownStarted():
            if state.cooldown_until is not None and event.until <= state.cooldown_until:
                return (
                    state,
                    f"backend {state.id} already cools until {state.cooldown_until.isoformat()}",
                )
            started = state.cooldown_started_at if state.cooling(at) else at
            return replace(
                state,
                cooldown_until=event.until,
                cooldown_started_at=started,
                consecutive_429s=max(state.consecutive_429s, event.consecutive),
            ), None
        case CooldownEnded():
            if state.cooldown_until is None:
                return state, f"backend {state.id} has no cooldown to end"
            if event.until is not None and event.until < state.cooldown_until:
                return (
                    state,
                    f"backend {state.id} cools until {state.cooldown_until.isoformat()} now",
                )
            return replace(state, cooldown_until=None, cooldown_started_at=None), None
        case Recovered():
            if state.consecutive_429s == 0:
                return state, f"backend {state.id} had no 429s to recover from"
            return replace(state, consecutive_429s=0), None
        case ProbeChanged():
            if state.probe == event.state:
                return state, f"backend {state.id} probe is already {event.state}"
            return replace(state, probe=event.state, probe_since=at), None
        case _:
            return state, f"unhandled event {type(event).__name__}"
