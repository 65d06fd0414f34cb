"""The proxy's instruments (DESIGN §7), created once per process like the HTTP ones in tracing.py.

The per-request ones are prometheus_client's (see `services.runtime.telemetry.hot_registry`); the rest
are OpenTelemetry observables read at scrape time.

`agentledger_backend_state{backend}`: 0 ready, 1 cooling, 2 degraded, 3 down, 4 disabled, read
from every providers fold of the process (a test may run two replicas in one process; the
first fold to know a backend answers for it).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Observation
from prometheus_client import Counter, Histogram

from services.runtime import telemetry

if TYPE_CHECKING:
    from services.gateway.proxy.providers import ProvidersFold

_folds: weakref.WeakSet[ProvidersFold] = weakref.WeakSet()
_meter = telemetry.meter()

requests = Counter(
    "agentledger_proxy_requests", "Proxied attempts by backend, canonical model and status code",
    ["backend", "model", "code"], registry=telemetry.hot_registry(),
)
overhead = Histogram(
    "agentledger_proxy_overhead_seconds", "Time a proxied request spends in the gateway, upstream time excluded",
    unit="seconds", buckets=telemetry.SECONDS_BUCKETS, registry=telemetry.hot_registry(),
)
emergency = Counter(
    "agentledger_emergency", "Attempts sent through emergency passthrough (10 % RPM)",
    registry=telemetry.hot_registry(),
)


def state_of(b: object, now: datetime) -> int:
    from events.providers import Backend

    assert isinstance(b, Backend)
    if not b.enabled:
        return 4
    if b.probe == "down":
        return 3
    if b.cooling(now):
        return 1
    return 2 if b.probe == "degraded" else 0


def _states(_: CallbackOptions) -> Iterable[Observation]:
    now = datetime.now(UTC)
    seen: dict[str, int] = {}
    for fold in list(_folds):
        for b in fold.backends.values():
            if b.live and b.id not in seen:
                seen[b.id] = state_of(b, now)
    return [Observation(v, {"backend": k}) for k, v in seen.items()]


def _cooldowns(_: CallbackOptions) -> Iterable[Observation]:
    folds = list(_folds)
    return [Observation(max((f.cooldowns_started for f in folds), default=0))]


_meter.create_observable_gauge(
    "agentledger_backend_state", [_states],
    description="Backend state: 0 ready, 1 cooling, 2 degraded, 3 down, 4 disabled",
)
_meter.create_observable_counter(
    "agentledger_cooldowns", [_cooldowns], description="cooldown_started events folded from PROVIDERS"
)


def follow(fold: ProvidersFold) -> None:
    _folds.add(fold)
