"""Health probes: every enabled backend's `GET <base>/models`, on an interval, from every replica.

The verdict: a 2xx (or a 429: it answers, it is only busy) is `healthy`; any other HTTP status is
`degraded` (routing tries it last); no answer (connect error, timeout) is `down` (routing skips
it). `ObserveProbe` yields an event only when the verdict changes, appended with OCC, so replicas
that probe the same change record it once (the loser of the race re-decides and finds nothing new).
The first round waits one interval: a gateway that starts does not probe before it serves.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from events import providers
from services.gateway.proxy.providers import ProvidersFold

log = logging.getLogger(__name__)


def verdict(status: int | None) -> providers.Probe:
    if status is None:
        return "down"
    return "healthy" if 200 <= status < 300 or status == 429 else "degraded"


async def probe(fold: ProvidersFold, session: aiohttp.ClientSession, backend: providers.Backend,
                timeout_s: float) -> providers.ObserveProbe:
    key = fold.api_key(backend.id) or ""
    t0 = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        async with session.get(f"{backend.api_base_url.rstrip('/')}/models",
                               headers={"Authorization": f"Bearer {key}"},
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    latency = (time.perf_counter() - t0) * 1000
    return providers.ObserveProbe(state=verdict(status), status=status, latency_ms=latency, error=error)


async def run(fold: ProvidersFold, session: aiohttp.ClientSession, interval_s: float, timeout_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        backends = [b for b in fold.routable() if b.enabled]
        results = await asyncio.gather(*[probe(fold, session, b, timeout_s) for b in backends])
        for b, observed in zip(backends, results, strict=True):
            if observed.state != fold.backends[b.id].probe:
                log.info("probe: backend %s is %s (status %s%s)", b.id, observed.state, observed.status,
                         f", {observed.error}" if observed.error else "")
                await fold.observe(b.id, observed)
