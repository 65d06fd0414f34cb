"""Pure routing over the folded PROVIDERS state: which backends to try, in which order.

Rules (DESIGN §6):
- only live, enabled backends that map the requested canonical model and whose probe is not
  `down` are considered;
- order: the primary pool, then the fallback pool; inside a pool healthy backends first and
  degraded ones last; among equals the one with the larger share of its RPM tokens left, then id;
- a backend in cooldown is skipped, including the last 10 s of it (it is about to be hit again
  by every replica at once); time is the caller's `now`, never the arrival of `cooldown_ended`;
- a backend without an RPM token (token bucket per backend, refilled continuously) is skipped;
- when that leaves nobody: emergency passthrough through every considered backend, cooling or
  not, at 10 % of its RPM (a second bucket), the closest to the end of its cooldown first;
- when even that is empty: `Exhausted` with Retry-After = the shortest remaining cooldown (or the
  time to the next RPM token when nobody cools), at least 1 s.

`plan` only looks; the caller takes a token (`claim`) when it really sends to a candidate, so a
failed-over attempt spends a token of the backend it went to and none of the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

import msgspec

from events.providers import Backend

PRECHECK_S = 10.0
EMERGENCY_FRACTION = 0.10
POOL_ORDER = {"primary": 0, "fallback": 1}
PROBE_ORDER = {"healthy": 0, "degraded": 1}


# --- token bucket ---------------------------------------------------------------------------


class TokenBucket(msgspec.Struct, frozen=True):
    """`capacity` tokens at most, `rate` tokens per second, `tokens` as of `at` (seconds)."""

    capacity: float
    rate: float
    tokens: float
    at: float


def bucket(per_minute: float, now: float) -> TokenBucket:
    """A full bucket for `per_minute` requests (capacity at least 1)."""
    return TokenBucket(max(1.0, per_minute), max(0.0, per_minute) / 60.0, max(1.0, per_minute), now)


def refill(b: TokenBucket, now: float) -> TokenBucket:
    """Tokens as of `now`; a clock that goes back refills nothing and never moves `at` back."""
    if now <= b.at:
        return b
    return TokenBucket(b.capacity, b.rate, min(b.capacity, b.tokens + (now - b.at) * b.rate), now)


def take(b: TokenBucket, now: float, n: float = 1.0) -> tuple[bool, TokenBucket]:
    b = refill(b, now)
    if b.tokens >= n:
        return True, TokenBucket(b.capacity, b.rate, b.tokens - n, b.at)
    return False, b


def seconds_to_token(b: TokenBucket, now: float) -> float:
    b = refill(b, now)
    if b.tokens >= 1.0:
        return 0.0
    return math.inf if b.rate <= 0 else (1.0 - b.tokens) / b.rate


def resize(b: TokenBucket, per_minute: float, now: float) -> TokenBucket:
    """The same bucket under a new RPM: keeps the tokens it has, never above the new capacity."""
    b = refill(b, now)
    capacity = max(1.0, per_minute)
    return TokenBucket(capacity, max(0.0, per_minute) / 60.0, min(b.tokens, capacity), b.at)


class Limits(msgspec.Struct, frozen=True):
    """One backend's buckets: the normal RPM and the emergency 10 %."""

    normal: TokenBucket
    emergency: TokenBucket


def limits_for(backend: Backend, now: float, previous: Limits | None = None) -> Limits:
    """Buckets matching the backend's current `rpm_limit`, carrying over what `previous` had."""
    rpm, emergency = float(backend.rpm_limit), backend.rpm_limit * EMERGENCY_FRACTION
    if previous is None:
        return Limits(bucket(rpm, now), bucket(emergency, now))
    if previous.normal.capacity == max(1.0, rpm):
        return previous
    return Limits(resize(previous.normal, rpm, now), resize(previous.emergency, emergency, now))


def claim(limits: Limits, emergency: bool, now: float) -> tuple[bool, Limits]:
    """Take one token for a request really sent (from the emergency bucket in emergency)."""
    if emergency:
        ok, b = take(limits.emergency, now)
        return ok, Limits(limits.normal, b)
    ok, b = take(limits.normal, now)
    return ok, Limits(b, limits.emergency)


# --- model mapping and cost -----------------------------------------------------------------


def native_model(backend: Backend, canonical: str) -> str | None:
    mapping = backend.model_mappings.get(canonical)
    return None if mapping is None else mapping.native_id


def cost(backend: Backend, canonical: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Prompt and completion tokens times the mapping's price per token (0 when unmapped)."""
    mapping = backend.model_mappings.get(canonical)
    if mapping is None:
        return 0.0
    return prompt_tokens * mapping.cost.input + completion_tokens * mapping.cost.output


def served_models(backends: Iterable[Backend]) -> list[str]:
    """The canonical models some live, enabled backend maps (`GET /v1/models`)."""
    return sorted({m for b in backends if b.live and b.enabled for m in b.model_mappings})


# --- routing --------------------------------------------------------------------------------


class Candidate(NamedTuple):
    backend: Backend
    native_model: str
    emergency: bool


class Routed(msgspec.Struct, frozen=True, kw_only=True):
    candidates: tuple[Candidate, ...]
    emergency: bool = False
    skipped: tuple[tuple[str, str], ...] = ()  # (backend id, why) for logs and the dashboard


class Exhausted(msgspec.Struct, frozen=True, kw_only=True):
    """Nobody to send to: 503 with `Retry-After: retry_after_s`; `served` False: unknown model."""

    retry_after_s: int | None
    served: bool
    reason: str
    skipped: tuple[tuple[str, str], ...] = ()


def cooldown_skip(backend: Backend, now: datetime) -> str | None:
    """Why a cooldown keeps this backend out of normal routing at `now`, or None."""
    left = backend.remaining_s(now)
    if left <= 0:
        return None
    if left <= PRECHECK_S:
        return f"cooldown ends within {PRECHECK_S:.0f} s ({left:.1f} s left)"
    return f"cooling ({left:.1f} s left)"


def plan(
    backends: Iterable[Backend], limits: Mapping[str, Limits], model: str, now: datetime
) -> Routed | Exhausted:
    """The ordered backends to try for `model` at `now`; missing `limits` count as full."""
    clock = now.timestamp()
    considered: list[Backend] = []
    skipped: list[tuple[str, str]] = []
    for b in backends:
        if not b.live or model not in b.model_mappings:
            continue
        if not b.enabled:
            skipped.append((b.id, "disabled"))
        elif b.probe == "down":
            skipped.append((b.id, "probe says down"))
        else:
            considered.append(b)
    served = bool(considered) or bool(skipped)

    def lim(b: Backend) -> Limits:
        return limits_for(b, clock, limits.get(b.id))

    ready: list[tuple[tuple[object, ...], Backend]] = []
    for b in considered:
        if (why := cooldown_skip(b, now)) is not None:
            skipped.append((b.id, why))
            continue
        normal = refill(lim(b).normal, clock)
        if normal.tokens < 1.0:
            skipped.append((b.id, "no RPM token"))
            continue
        key = (POOL_ORDER[b.pool], PROBE_ORDER[b.probe], -normal.tokens / normal.capacity, b.id)
        ready.append((key, b))
    if ready:
        ready.sort(key=lambda kb: kb[0])
        return Routed(
            candidates=tuple(_candidate(b, model, False) for _, b in ready), skipped=tuple(skipped)
        )

    spare: list[tuple[tuple[object, ...], Backend]] = []
    for b in considered:
        if refill(lim(b).emergency, clock).tokens >= 1.0:
            spare.append(((POOL_ORDER[b.pool], PROBE_ORDER[b.probe], b.remaining_s(now), b.id), b))
    if spare:
        spare.sort(key=lambda kb: kb[0])
        return Routed(
            candidates=tuple(_candidate(b, model, True) for _, b in spare),
            emergency=True,
            skipped=tuple(skipped),
        )

    if not served:
        return Exhausted(
            retry_after_s=None, served=False, reason=f"no backend serves model {model}"
        )
    waits = [b.remaining_s(now) for b in considered if b.cooling(now)]
    if not waits:
        waits = [seconds_to_token(lim(b).normal, clock) for b in considered]
    finite = [w for w in waits if math.isfinite(w)]
    retry = max(1, math.ceil(min(finite))) if finite else None
    return Exhausted(
        retry_after_s=retry,
        served=True,
        skipped=tuple(skipped),
        reason=f"every backend serving {model} is cooling, rate limited or down",
    )


def _candidate(b: Backend, model: str, emergency: bool) -> Candidate:
    return Candidate(b, b.model_mappings[model].native_id, emergency)
