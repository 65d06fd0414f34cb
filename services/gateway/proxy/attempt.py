"""One try of a proxied request against one backend, and the usage event it leaves behind.

Its own module so that the handler and the stream relay both use it without importing each other.
"""

from __future__ import annotations

import asyncio
import time

from events import usage
from events.core.bounds import INT32_MAX
from events.core.client import prepare
from events.providers import routing
from services.gateway.proxy import metrics
from services.gateway.proxy.providers import ProxyContext


class Attempt:
    """One try against one backend; `upstream_s` is the time spent waiting on the upstream."""

    def __init__(self, ctx: ProxyContext, cand: routing.Candidate, model: str, endpoint: str,
                 request_id: str, n: int, stream: bool) -> None:
        self.ctx, self.cand, self.model, self.endpoint = ctx, cand, model, endpoint
        self.request_id, self.n, self.stream = request_id, n, stream
        self.upstream_s = 0.0
        self.status: int | None = None
        self.ttft_ms: float | None = None
        self.error: usage.ErrorKind | None = None
        self.detail: str | None = None
        self.tokens = (0, 0)
        self.started = time.perf_counter()
        self.latency_ms = 0.0

    def done(self) -> None:
        """Take the latency now; build and spool the usage event once the response is written."""
        self.latency_ms = (time.perf_counter() - self.started) * 1000
        asyncio.get_running_loop().call_soon(self.record)

    def record(self) -> None:
        b = self.cand.backend
        metrics.requests.labels(b.id, self.model, str(self.status or 0)).inc()
        if self.cand.emergency:
            metrics.emergency.inc()
        # what an upstream reports is recorded within the schema's bounds, never refused: an
        # event the SDK refused would be a request without its usage event
        prompt, completion = (min(max(t, 0), INT32_MAX) for t in self.tokens)
        event = usage.UsageCompleted(
            model=self.model, native_model=self.cand.native_model, endpoint=self.endpoint,  # type: ignore[arg-type]
            status=self.status if self.status is not None and 100 <= self.status <= 599 else None,
            prompt_tokens=prompt, completion_tokens=completion,
            cost=min(routing.cost(b, self.model, prompt, completion), usage.COST_MAX),
            latency_ms=self.latency_ms, ttft_ms=self.ttft_ms,
            stream=self.stream, emergency=self.cand.emergency, pool=b.pool,
            request_id=self.request_id, attempt=self.n, error=self.error,
            error_detail=self.detail[:2000] if self.detail else None,
        )
        self.ctx.spool.put(prepare(b.id, event, msg_id=usage.msg_id(event, b.id)))
