"""Health probes: a verdict change is one `probe_changed` event; down backends are skipped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from events.core.client import EventClient
from services.gateway.app import create_app
from services.gateway.keys import PROXY
from services.gateway.proxy.probes import verdict
from tests.polling import eventually
from tests.services.gateway.proxy.fixtures import (
    Client,
    auth,
    create_backend,
    settings,
    start_upstream,
)

CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}


def test_the_verdict_of_a_probe() -> None:
    assert [verdict(s) for s in (200, 429, 404, 500, None)] == [
        "healthy", "healthy", "degraded", "degraded", "down"]


async def test_an_unreachable_backend_is_marked_down_once_and_skipped(
    client: EventClient, nats_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    b = await start_upstream("b")
    await create_backend(client, "dead", "http://127.0.0.1:9/v1", pool="primary")
    await create_backend(client, "b", b.url, pool="fallback")
    gw = await aiohttp_client(create_app(settings(nats_url, probe_interval_s=0.05, probe_timeout_s=1.0)))
    fold = gw.app[PROXY].fold
    await eventually(lambda: fold.backends["dead"].probe == "down", timeout=10)
    r = await gw.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert r.status == 200
    await eventually(lambda: fold.backends["dead"].probe == "down", timeout=1)
    last = (await client.js.stream_info("PROVIDERS")).state.last_seq
    subjects = [(await client.js.get_msg("PROVIDERS", s)).subject for s in range(1, last + 1)]
    assert subjects.count("providers.dead.probe_changed") == 1
    assert "providers.b.probe_changed" not in subjects  # healthy stays healthy: no event
    assert b.server is not None
    await b.server.close()
