"""OpenTelemetry for the whole process: one tracer provider, one meter provider, one registry.

Providers are process-global in OpenTelemetry, so they are set up once here and every service
(gateway, projector, CLI-started `up`) shares them. Metrics are exported as Prometheus text from
a private registry; values that live elsewhere (projection lag, heartbeat times held by the
projector) are pulled into `Observed` just before a scrape and read by observable instruments.

The few instruments touched on every proxied HTTP request are prometheus_client's own, on the same
registry (`hot_registry`): the OpenTelemetry SDK spends ~6.5 us per `add`/`record` (attribute
cleaning, view matching) against ~1.5 us, and a proxied request records three of them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import prometheus_client
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from prometheus_client import CollectorRegistry, generate_latest

_lock = threading.Lock()
_state: Telemetry | None = None
_exporting = False

SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Observed:
    """Latest values pulled from other services, read by the observable instruments."""

    heartbeats: dict[str, float] = field(default_factory=dict)
    lag: dict[str, float] = field(default_factory=dict)
    healthy: dict[str, float] = field(default_factory=dict)
    rejects: float = 0.0
    calendar_wakes: dict[str, float] = field(default_factory=dict)  # outcome -> wakes recorded
    calendar_sync_age: dict[str, float] = field(default_factory=dict)  # claw -> s since its last sync
    report_pending: dict[str, float] = field(default_factory=dict)  # target -> queue depth
    report_oldest_s: dict[str, float] = field(default_factory=dict)  # target -> oldest pending age
    report_deliveries: dict[tuple[str, str], float] = field(default_factory=dict)  # (target, outcome)


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    registry: CollectorRegistry
    observed: Observed

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)


class WhileExporting(Sampler):
    """Record root spans only while a span processor consumes them (`add_span_processor`).

    With none, a recording span costs ~10 us more per request or command for nothing; a
    non-recording one still carries a valid trace id to the `traceparent` of the response and of
    every NATS message, so traces stay joinable. `OTEL_TRACES_SAMPLER` overrides this.
    """

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: TraceState | None = None) -> SamplingResult:
        chosen = ALWAYS_ON if _exporting else ALWAYS_OFF
        return chosen.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "WhileExporting"


def add_span_processor(processor: SpanProcessor) -> None:
    """Attach an exporter's processor; from now on root spans are recorded."""
    global _exporting
    setup().tracer_provider.add_span_processor(processor)
    _exporting = True


def setup(service_name: str = "agentledger") -> Telemetry:
    """Idempotent: the first call wins, later calls return the same providers."""
    global _state
    with _lock:
        if _state is not None:
            return _state
        resource = Resource.create({"service.name": service_name})
        sampler = None if os.environ.get("OTEL_TRACES_SAMPLER") else ParentBased(WhileExporting())
        tracer_provider = TracerProvider(resource=resource, sampler=sampler)
        trace.set_tracer_provider(tracer_provider)
        prometheus_client.disable_created_metrics()  # OpenTelemetry's counters have no `_created` either
        registry = CollectorRegistry(auto_describe=True)
        reader = PrometheusMetricReader(
            disable_target_info=True, scope_info_enabled=False, registry=registry
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        metrics.set_meter_provider(meter_provider)
        _state = Telemetry(tracer_provider, meter_provider, registry, Observed())
        _register_observed(meter_provider, _state.observed)
        return _state


def _register_observed(provider: MeterProvider, observed: Observed) -> None:
    meter = provider.get_meter("agentledger")

    def heartbeats(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(ts, {"agent": a}) for a, ts in observed.heartbeats.items()]

    def lag(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, {"projection": p}) for p, v in observed.lag.items()]

    def healthy(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, {"projection": p}) for p, v in observed.healthy.items()]

    def rejects(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(observed.rejects)]

    def calendar_wakes(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, {"outcome": o}) for o, v in observed.calendar_wakes.items()]

    def calendar_sync_age(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, {"claw": c}) for c, v in observed.calendar_sync_age.items()]

    meter.create_observable_counter(
        "agentledger_calendar_wakes", [calendar_wakes],
        description="Due slots decided, by outcome: woken or skipped (calendar_wakes)",
    )
    meter.create_observable_gauge(
        "agentledger_calendar_sync_age_seconds", [calendar_sync_age],
        description="Seconds since each claw's last successful calendar sync",
    )
    def pending(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, {"target": t}) for t, v in observed.report_pending.items()]

    def oldest(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, {"target": t}) for t, v in observed.report_oldest_s.items()]

    def deliveries(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(v, {"target": t, "outcome": o}) for (t, o), v in observed.report_deliveries.items()]

    meter.create_observable_gauge(
        "agentledger_reports_pending", [pending], description="Reports waiting for delivery, per target",
    )
    meter.create_observable_gauge(
        "agentledger_report_oldest_pending_seconds", [oldest],
        description="Age of the oldest report still pending for each target (0 when none)",
    )
    meter.create_observable_counter(
        "agentledger_report_deliveries", [deliveries],
        description="Delivery attempts per target and outcome (delivered, failed, rate_limited, timeout)",
    )
    meter.create_observable_gauge(
        "agentledger_agent_heartbeat_timestamp_seconds", [heartbeats],
        description="Unix time of each agent's last heartbeat (JetStream time)",
    )
    meter.create_observable_gauge(
        "agentledger_projection_lag_events", [lag],
        description="Events stored but not yet applied, per projection",
    )
    meter.create_observable_gauge(
        "agentledger_projection_healthy", [healthy],
        description="1 when the projection applies events, 0 when it stopped on an error",
    )
    meter.create_observable_counter(
        "agentledger_rejects", [rejects],
        description="Stored payloads that no reader could decode (listed in _rejects)",
    )


def meter() -> metrics.Meter:
    return setup().meter_provider.get_meter("agentledger")


def hot_registry() -> CollectorRegistry:
    """The registry for hot-path prometheus_client instruments (exported with everything else)."""
    return setup().registry


def tracer(name: str) -> trace.Tracer:
    setup()
    return trace.get_tracer(name)
