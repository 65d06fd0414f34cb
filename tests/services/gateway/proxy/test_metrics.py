"""The proxy's Prometheus series (DESIGN §7)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client.parser import text_string_to_metric_families

from events.core.client import EventClient
from services.gateway.app import create_app
from tests.services.gateway.proxy.fixtures import (
    Client,
    auth,
    create_backend,
    settings,
    start_upstream,
)

CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}


async def test_requests_overhead_backend_state_cooldowns_and_emergency_are_exported(
    client: EventClient, nats_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    a, b = await start_upstream("a", status=429, headers={"Retry-After": "60"}), await start_upstream("b")
    await create_backend(client, "ma", a.url, pool="primary", rpm=10)
    await create_backend(client, "mb", b.url, pool="fallback")
    gw = await aiohttp_client(create_app(settings(nats_url)))
    assert (await gw.post("/v1/chat/completions", json=CHAT, headers=auth())).status == 200
    text = await (await gw.get("/metrics")).text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("agentledger_proxy_requests_total", (("backend", "ma"), ("code", "429"), ("model", "gpt-x")))] >= 1
    assert samples[("agentledger_proxy_requests_total", (("backend", "mb"), ("code", "200"), ("model", "gpt-x")))] >= 1
    assert samples[("agentledger_backend_state", (("backend", "ma"),))] == 1  # cooling
    assert samples[("agentledger_backend_state", (("backend", "mb"),))] == 0
    assert samples[("agentledger_cooldowns_total", ())] >= 1
    assert any(n == "agentledger_proxy_overhead_seconds_count" and v >= 1 for (n, _), v in samples.items())
    assert samples[("agentledger_emergency_total", ())] >= 0
