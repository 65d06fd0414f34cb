"""A span per HTTP request, continuing the caller's W3C trace context when one is sent.

The span is current while the handler runs, so the SDK copies its `traceparent` into the NATS
headers of every event the request publishes and the projector's batch span can link to it.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Histogram

from services.runtime import telemetry

_tracer = telemetry.tracer(__name__)
_duration = Histogram(
    "agentledger_http_request_duration_seconds", "Gateway request latency by route and status",
    ["route", "code"], unit="seconds", buckets=telemetry.SECONDS_BUCKETS, registry=telemetry.hot_registry(),
)
_CONTEXT_HEADERS = ("traceparent", "tracestate", "baggage")


@web.middleware
async def tracing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    route = resource.canonical if resource else "unmatched"
    headers = request.headers
    ctx = propagate.extract(headers) if any(h in headers for h in _CONTEXT_HEADERS) else None
    start = time.perf_counter()
    with _tracer.start_as_current_span(
        f"{request.method} {route}", context=ctx, kind=SpanKind.SERVER,
        attributes={"http.request.method": request.method, "http.route": route},
    ) as span:
        response = await handler(request)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        if span.get_span_context().is_valid:
            response.headers["traceparent"] = _traceparent(span)
    _duration.labels(route, str(response.status)).observe(time.perf_counter() - start)
    return response


def _traceparent(span: trace.Span) -> str:
    c = span.get_span_context()
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"
