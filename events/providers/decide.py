"""The providers aggregate: one upstream LLM backend, its configuration, cooldown and health.

Invariants:
- the backend id is the aggregate id (subject), never in the payload;
- the API key is only ever an encrypted token `<key_id>:<nonce>:<ciphertext>` (events.core.keyring);
  an event carrying anything else is refused by the schema, so no plaintext reaches the stream;
- a backend is created once; a deleted backend stays deleted: later events are no-ops;
- a 429 is always recorded (`rate_limited`); the cooldown it starts lasts the upstream
  `Retry-After` when given, else 30 s x 2^(n-1) capped at 600 s, n being the consecutive 429s
  (the arithmetic and the header parser are in events.providers.cooldowns);
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

from datetime import datetime, timedelta
from typing import Literal, assert_never

from msgspec.structs import replace

from events.core.keyring import is_token
from events.providers.cooldowns import backoff_s, header_summary, parse_retry_after
from events.providers.model import (
    AlreadyExists,
    Backend,
    BackendCreated,
    BackendDeleted,
    BackendUpdated,
    CooldownEnded,
    CooldownStarted,
    Create,
    Delete,
    KeyRotated,
    NotEncrypted,
    NotFound,
    ObserveProbe,
    ObserveRateLimit,
    ObserveSuccess,
    ProbeChanged,
    ProviderCommand,
    ProviderEvent,
    RateLimited,
    Recovered,
    RotateKey,
    Update,
)

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
