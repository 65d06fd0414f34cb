"""Streaming pass-through: TTFT measured, failover only before the first byte, a broken stream ends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from events.core import codec
from events.core.client import EventClient
from events.usage import UsageCompleted
from services.gateway.app import create_app
from services.gateway.keys import PROXY
from tests.services.gateway.proxy.fixtures import (
    Client,
    auth,
    create_backend,
    settings,
    sse_chunks,
    start_upstream,
)

CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def usage_events(client: EventClient, gw: Client) -> list[UsageCompleted]:
    assert await gw.app[PROXY].spool.drained(5)
    last = (await client.js.stream_info("USAGE")).state.last_seq
    out = []
    for seq in range(1, last + 1):
        msg = await client.js.get_msg("USAGE", seq)
        event = codec.decode(msg.subject, msg.data)
        assert isinstance(event, UsageCompleted)
        out.append(event)
    return out


async def test_a_stream_passes_through_and_its_ttft_and_tokens_are_recorded(
    client: EventClient, nats_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    a = await start_upstream("a")
    await create_backend(client, "a", a.url)
    gw = await aiohttp_client(create_app(settings(nats_url)))
    r = await gw.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    body = await r.read()
    assert body == b"".join(sse_chunks("a"))
    [u] = await usage_events(client, gw)
    assert u.stream and u.status == 200 and u.ttft_ms is not None and u.ttft_ms <= u.latency_ms
    assert (u.prompt_tokens, u.completion_tokens) == (4, 3) and u.error is None


async def test_a_stream_fails_over_while_no_byte_was_sent(
    client: EventClient, nats_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    a, b = await start_upstream("a", status=503), await start_upstream("b")
    await create_backend(client, "a", a.url, pool="primary")
    await create_backend(client, "b", b.url, pool="fallback")
    gw = await aiohttp_client(create_app(settings(nats_url)))
    r = await gw.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert b" b" in await r.read()
    events = await usage_events(client, gw)
    assert [(e.status, e.attempt) for e in events] == [(503, 1), (200, 2)]
    assert len({e.request_id for e in events}) == 1


async def test_a_failure_mid_stream_ends_it_with_an_sse_error_event(
    client: EventClient, nats_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    a, b = await start_upstream("a", break_after=2), await start_upstream("b")
    await create_backend(client, "a", a.url, pool="primary")
    await create_backend(client, "b", b.url, pool="fallback")
    gw = await aiohttp_client(create_app(settings(nats_url)))
    r = await gw.post("/v1/chat/completions", json=CHAT, headers=auth())
    body = await r.read()  # returns: the stream ended, it did not hang
    assert body.startswith(b"data: ") and b"event: error\ndata: " in body
    error = msgspec.json.decode(body.split(b"event: error\ndata: ")[1].strip())
    assert error["error"]["code"] == "upstream_stream_broken"
    assert not b.seen  # bytes were sent: no failover
    [u] = await usage_events(client, gw)
    assert u.error == "stream_broken"
