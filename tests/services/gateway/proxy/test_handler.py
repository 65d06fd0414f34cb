"""The proxy end to end: gateway keys, model mapping, key injection, failover, 503, stock openai SDK."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from events.core.client import EventClient
from services.gateway.app import create_app
from tests.services.gateway.proxy.fixtures import (
    GATEWAY_KEY,
    Client,
    Upstream,
    auth,
    completion,
    create_backend,
    settings,
    start_upstream,
)

CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def ups() -> AsyncIterator[dict[str, Upstream]]:
    made = {n: await start_upstream(n) for n in ("a", "b")}
    yield made
    for up in made.values():
        assert up.server is not None
        await up.server.close()


@pytest.fixture
async def gateway(client: EventClient, nats_url: str, ups: dict[str, Upstream],
                  aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    await create_backend(client, "a", ups["a"].url, pool="primary")
    await create_backend(client, "b", ups["b"].url, pool="fallback")
    return await aiohttp_client(create_app(settings(nats_url)))


async def test_a_request_without_a_valid_gateway_key_is_401(gateway: Client, ups: dict[str, Upstream]) -> None:
    for headers in ({}, auth("wrong"), {"Authorization": GATEWAY_KEY}):
        r = await gateway.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unauthorized"
    assert not ups["a"].seen and not ups["b"].seen


async def test_models_lists_the_canonical_models(gateway: Client) -> None:
    r = await gateway.get("/v1/models", headers=auth())
    assert r.status == 200, await r.text()
    assert [m["id"] for m in (await r.json())["data"]] == ["gpt-x"]


async def test_the_native_model_and_the_backend_key_go_upstream_never_the_client_auth(
    gateway: Client, ups: dict[str, Upstream]
) -> None:
    r = await gateway.post("/v1/chat/completions", json={**CHAT, "temperature": 0.5},
                           headers={**auth(), "x-api-key": "client-provider-key", "api-key": "nope"})
    assert r.status == 200, await r.text()
    assert (await r.json())["choices"][0]["message"]["content"] == "hello from a"
    seen = ups["a"].seen[0]
    assert seen["body"] == {**CHAT, "temperature": 0.5, "model": "a-native"}
    assert seen["headers"]["Authorization"] == "Bearer sk-secret-a-0123456789"
    lowered = {k.lower() for k in seen["headers"]}
    assert "x-api-key" not in lowered and "api-key" not in lowered
    assert not ups["b"].seen


async def test_a_5xx_fails_over_to_the_next_backend(gateway: Client, ups: dict[str, Upstream]) -> None:
    ups["a"].status = 502
    r = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert r.status == 200
    assert (await r.json())["choices"][0]["message"]["content"] == "hello from b"
    assert len(ups["a"].seen) == 1 and len(ups["b"].seen) == 1


async def test_a_connect_error_fails_over(client: EventClient, nats_url: str, ups: dict[str, Upstream],
                                          aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    await create_backend(client, "dead", "http://127.0.0.1:9/v1", pool="primary")
    await create_backend(client, "b", ups["b"].url, pool="fallback")
    gateway = await aiohttp_client(create_app(settings(nats_url)))
    r = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert r.status == 200
    assert len(ups["b"].seen) == 1


async def test_completions_and_embeddings_are_proxied(gateway: Client, ups: dict[str, Upstream]) -> None:
    r = await gateway.post("/v1/completions", json={"model": "gpt-x", "prompt": "hi"}, headers=auth())
    assert r.status == 200
    r = await gateway.post("/v1/embeddings", json={"model": "gpt-x", "input": "hi"}, headers=auth())
    assert r.status == 200 and (await r.json())["model"] == "a-native"
    assert [s["path"] for s in ups["a"].seen] == ["/v1/completions", "/v1/embeddings"]


async def test_an_unknown_model_is_404_and_everyone_failing_is_an_error_with_retry_after(
    gateway: Client, ups: dict[str, Upstream]
) -> None:
    r = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "nope"}, headers=auth())
    assert r.status == 404
    ups["a"].status = ups["b"].status = 500
    r = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert r.status == 502 and r.headers["Retry-After"] == "1"


async def test_all_cooling_goes_through_emergency_then_503_with_retry_after(
    client: EventClient, nats_url: str, ups: dict[str, Upstream],
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    await create_backend(client, "a", ups["a"].url, rpm=10)  # emergency: 1 token
    gateway = await aiohttp_client(create_app(settings(nats_url)))
    ups["a"].status, ups["a"].headers = 429, {"Retry-After": "60"}
    r = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert r.status == 503
    ups["a"].status = 200
    r = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert r.status == 200  # the emergency passthrough's one token
    r = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert r.status == 503
    assert 55 <= int(r.headers["Retry-After"]) <= 60
    assert len(ups["a"].seen) == 2


async def test_the_stock_openai_sdk_completes_plain_and_streamed_chats(gateway: Client) -> None:
    sdk = openai.AsyncOpenAI(base_url=str(gateway.make_url("/v1")), api_key=GATEWAY_KEY, max_retries=0)
    try:
        done = await sdk.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content == "hello from a"
        assert done.usage is not None and done.usage.total_tokens == 12
        stream = await sdk.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "hello from a"
        models = await sdk.models.list()
        assert [m.id for m in models.data] == ["gpt-x"]
    finally:
        await sdk.close()




async def test_a_compressed_answer_reaches_the_client_with_its_encoding(
    client: EventClient, nats_url: str, aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    """The gateway asks for identity, but an upstream may compress anyway: the body is not
    decompressed on the way, so its Content-Encoding must travel with it."""
    seen: list[str] = []

    async def gzipping(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Accept-Encoding", ""))
        body = gzip.compress(orjson.dumps(completion("z", "z-native")))
        return web.Response(body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", gzipping)
    server = TestServer(app)
    await server.start_server()
    try:
        await create_backend(client, "z", str(server.make_url("/v1")))
        gateway = await aiohttp_client(create_app(settings(nats_url)))
        r = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth())
        assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
        assert (await r.json())["choices"][0]["message"]["content"] == "hello from z"
        assert seen == ["identity"]
    finally:
        await server.close()
