"""Usage events: one per attempt, off the response path, spooled through a NATS outage, stored once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from events.core import codec
from events.core.client import EventClient
from events.core.streams import ensure_streams
from events.usage import UsageCompleted
from services.gateway.app import create_app
from services.gateway.keys import NC, PROXY
from services.runtime.natsd import EmbeddedNats, free_port
from tests.polling import eventually
from tests.services.gateway.proxy.fixtures import (
    Client,
    auth,
    create_backend,
    settings,
    start_upstream,
)

CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}


async def stored(url: str) -> list[tuple[str, UsageCompleted]]:
    async with await EventClient.connect(url) as c:
        last = (await c.js.stream_info("USAGE")).state.last_seq
        out = []
        for seq in range(1, last + 1):
            msg = await c.js.get_msg("USAGE", seq)
            event = codec.decode(msg.subject, msg.data)
            assert isinstance(event, UsageCompleted)
            out.append((msg.subject, event))
        return out


async def test_every_attempt_is_one_usage_event_with_cost_from_the_mapping(
    client: EventClient, nats_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    a = await start_upstream("a")
    await create_backend(client, "a", a.url)
    gw = await aiohttp_client(create_app(settings(nats_url)))
    for _ in range(5):
        assert (await gw.post("/v1/chat/completions", json=CHAT, headers=auth())).status == 200
    assert await gw.app[PROXY].spool.drained(5)
    rows = await stored(nats_url)
    assert len(rows) == 5 and {s for s, _ in rows} == {"usage.a.completed"}
    u = rows[0][1]
    assert (u.model, u.native_model, u.status, u.prompt_tokens, u.completion_tokens) == ("gpt-x", "a-native", 200, 7, 5)
    assert not u.stream and not u.emergency and u.attempt == 1 and u.latency_ms > 0


@pytest.fixture
async def own_nats(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    server = EmbeddedNats(port=free_port(), store_dir=tmp_path / "store")
    server.start()
    async with await EventClient.connect(server.url) as c:
        await ensure_streams(c.js)
    yield server
    server.stop()


async def test_with_nats_stopped_the_proxy_answers_and_the_outages_usage_is_stored_once_after(
    own_nats: EmbeddedNats, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    a = await start_upstream("a")
    async with await EventClient.connect(own_nats.url) as c:
        await create_backend(c, "a", a.url)
    gw = await aiohttp_client(create_app(settings(own_nats.url, request_timeout_s=1.0)))
    spool = gw.app[PROXY].spool
    assert (await gw.post("/v1/chat/completions", json=CHAT, headers=auth())).status == 200
    assert await spool.drained(5)

    await asyncio.to_thread(own_nats.stop)
    for _ in range(10):
        assert (await gw.post("/v1/chat/completions", json=CHAT, headers=auth())).status == 200
    assert len(spool.items) >= 1  # waiting for NATS

    await asyncio.to_thread(own_nats.start)
    assert await spool.drained(30) and spool.dropped == 0
    rows = await stored(own_nats.url)
    ids = [(e.request_id, e.attempt) for _, e in rows]
    assert len(rows) == 11 and len(set(ids)) == 11


async def test_a_full_spool_refuses_the_newest_says_so_and_stores_what_it_kept_exactly_once(
    own_nats: EmbeddedNats, aiohttp_client: Callable[..., Awaitable[Client]], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="services.gateway.proxy.usage_spool")
    a = await start_upstream("a")
    async with await EventClient.connect(own_nats.url) as c:
        await create_backend(c, "a", a.url)
    gw = await aiohttp_client(create_app(settings(own_nats.url, request_timeout_s=1.0)))
    spool = gw.app[PROXY].spool
    spool.capacity = 4
    assert (await gw.post("/v1/chat/completions", json=CHAT, headers=auth())).status == 200
    assert await spool.drained(5)

    await asyncio.to_thread(own_nats.stop)
    await eventually(lambda: not gw.app[NC].is_connected, 10, "the gateway sees NATS gone")
    for _ in range(7):
        r = await gw.post("/v1/chat/completions", json=CHAT, headers=auth())
        assert r.status == 200 and (await r.json())["choices"][0]["message"]["content"] == "hello from a"
    assert (len(spool.items), spool.dropped) == (4, 3)
    full = [r.getMessage() for r in caplog.records if "usage spool full" in r.getMessage()]
    assert len(full) == 1 and "agentledger_usage_spool_dropped_total" in full[0]
    assert "agentledger_usage_spool_dropped_total 3.0" in await (await gw.get("/metrics")).text()

    await asyncio.to_thread(own_nats.start)
    assert await spool.drained(30) and spool.dropped == 3
    rows = await stored(own_nats.url)
    assert len(rows) == 1 + 4 and len({(e.request_id, e.attempt) for _, e in rows}) == 5
    assert any("3 usage events were refused" in r.getMessage() for r in caplog.records)
    assert a.server is not None
    await a.server.close()
