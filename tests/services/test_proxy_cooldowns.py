"""429s as events: a cooldown taken by one gateway replica holds in another sharing the NATS server."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from events.client import EventClient
from services.gateway.app import create_app
from services.gateway.keys import PROXY
from services.gateway.providers import now
from tests.polling import eventually
from tests.services.proxy_fixtures import Client, auth, create_backend, settings, start_upstream

CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}


async def subjects(client: EventClient) -> list[str]:
    last = (await client.js.stream_info("PROVIDERS")).state.last_seq
    return [(await client.js.get_msg("PROVIDERS", s)).subject for s in range(1, last + 1)]


async def test_a_429_with_retry_after_cools_the_backend_in_every_replica_for_that_long(
    client: EventClient, nats_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    a, b = await start_upstream("a"), await start_upstream("b")
    await create_backend(client, "a", a.url, pool="primary")
    await create_backend(client, "b", b.url, pool="fallback")
    one = await aiohttp_client(create_app(settings(nats_url)))
    two = await aiohttp_client(create_app(settings(nats_url)))
    a.status, a.headers = 429, {"Retry-After": "2"}

    fold = two.app[PROXY].fold
    r = await one.post("/v1/chat/completions", json=CHAT, headers=auth())
    answered = time.monotonic()
    await eventually(lambda: fold.backends["a"].cooling(now()), timeout=5,
                     what="replica two folds the cooldown of a")
    # measured, not asserted (the suite holds no timing assertions): the acceptance asks < 100 ms
    print(f"replica two honours the cooldown {(time.monotonic() - answered) * 1000:.1f} ms after the answer")
    assert r.status == 200 and (await r.json())["choices"][0]["message"]["content"] == "hello from b"
    assert await subjects(client) == ["providers.a.created", "providers.b.created",
                                      "providers.a.rate_limited", "providers.a.cooldown_started"]
    a.status = 200
    r = await one.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert (await r.json())["choices"][0]["message"]["content"] == "hello from b"  # the next one goes to B

    r = await two.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert (await r.json())["choices"][0]["message"]["content"] == "hello from b"
    assert len(a.seen) == 1

    async def a_again() -> bool:
        r = await two.post("/v1/chat/completions", json=CHAT, headers=auth())
        return (await r.json())["choices"][0]["message"]["content"] == "hello from a"

    await eventually(a_again, timeout=10, what="a serves again once its 2 s are over")
    ends = await eventually(lambda: _count(client, "providers.a.cooldown_ended"), timeout=5)
    assert ends == 1  # both replicas' timers fired; the msg id kept one
    for up in (a, b):
        assert up.server is not None
        await up.server.close()


async def _count(client: EventClient, subject: str) -> int:
    return sum(1 for s in await subjects(client) if s == subject)


async def test_a_429_without_the_header_cools_for_the_30_s_backoff_and_503_says_how_long(
    client: EventClient, nats_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    a = await start_upstream("a", status=429)
    await create_backend(client, "a", a.url)
    gw = await aiohttp_client(create_app(settings(nats_url)))
    r = await gw.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert r.status == 503 and r.headers["Retry-After"] == "30"
    backend = gw.app[PROXY].fold.backends["a"]
    assert backend.consecutive_429s == 1 and 29 < backend.remaining_s(now()) <= 30
    assert a.server is not None
    await a.server.close()
