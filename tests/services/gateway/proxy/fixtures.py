"""Shared pieces of the proxy tests: local upstream servers, backends created by events, a gateway.

Upstreams are real aiohttp servers on loopback; backends are created by appending `created`
events whose keys a test keyring encrypted, exactly what the admin API stores.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from events.core.client import EventClient
from events.core.keyring import Keyring
from events.providers import BackendCreated, ModelMapping
from services.settings import Settings

Client = TestClient[Any, Any]
GATEWAY_KEY = "gw-test-key-0123456789"
KEYRING = Keyring({"k1": b"\x01" * 32})


def settings(nats_url: str, **kw: Any) -> Settings:
    ring = "k1=" + base64.b64encode(b"\x01" * 32).decode()
    return Settings(nats_url=nats_url, projector_name="nobody", keyring=ring,
                         gateway_keys=f"other-key,{GATEWAY_KEY}", **kw)


def auth(key: str = GATEWAY_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Upstream:
    """A fake provider: records what it received, answers what `reply` says."""

    name: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None  # SSE body, sent chunk by chunk
    break_after: int | None = None  # close the connection after this many chunks
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v1"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if self.status != 200:
            return web.json_response({"error": {"message": f"{self.name} says {self.status}"}},
                                     status=self.status, headers=self.headers)
        if body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for n, chunk in enumerate(self.chunks or sse_chunks(self.name)):
                if self.break_after is not None and n >= self.break_after:
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                await resp.write(chunk)
                await asyncio.sleep(0.01)
            await resp.write_eof()
            return resp
        if request.path.endswith("/embeddings"):
            return web.json_response({"object": "list", "data": [{"object": "embedding", "index": 0,
                                      "embedding": [0.1, 0.2]}], "model": body["model"],
                                      "usage": {"prompt_tokens": 3, "total_tokens": 3}})
        return web.json_response(completion(self.name, body["model"]))


def completion(name: str, model: str) -> dict[str, Any]:
    return {"id": f"cmpl-{name}", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"hello from {name}"}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}}


def sse_chunks(name: str) -> list[bytes]:
    out = []
    for word in ("hello", " from", f" {name}"):
        out.append(b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                   "model": "m", "choices": [{"index": 0, "delta": {"content": word}}]}) + b"\n\n")
    out.append(b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1,
               "model": "m", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3,
                                                      "total_tokens": 7}}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


async def _models(_: web.Request) -> web.Response:
    return web.json_response({"data": []})


async def start_upstream(name: str, **kw: Any) -> Upstream:
    up = Upstream(name, **kw)
    app = web.Application()
    app.router.add_post("/v1/{tail:.*}", up.handle)
    app.router.add_get("/v1/models", _models)
    up.server = TestServer(app)
    await up.server.start_server()
    return up


async def create_backend(client: EventClient, backend_id: str, base_url: str, *, pool: str = "primary",
                         rpm: int = 600, timeout: float = 5.0, model: str = "gpt-x",
                         native: str | None = None) -> None:
    event = BackendCreated(
        backend_name=backend_id, api_base_url=base_url, pool=pool,  # type: ignore[arg-type]
        api_key=KEYRING.encrypt(f"sk-secret-{backend_id}-0123456789", aad=backend_id),
        rpm_limit=rpm, timeout_seconds=timeout,
        model_mappings={model: ModelMapping(native_id=native or f"{backend_id}-native")},
    )
    await client.append(backend_id, [event], expected_seq=0)


GatewayFactory = Callable[..., Awaitable[Client]]
