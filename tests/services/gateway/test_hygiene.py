"""Malformed HTTP input is a 4xx, never a 500; idle and half-sent connections are closed;
large rejects come back in pages with their payloads cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp.test_utils import TestClient

from events.core.client import EventClient
from services.gateway.app import create_app, serve
from services.projector.service import ProjectorHost
from services.runtime.natsd import free_port
from services.settings import Settings
from tests.hosting import in_task, raw_pub, running
from tests.polling import eventually

Client = TestClient[Any, Any]


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return Settings(nats_url=nats_url, home=str(tmp_path), batch_ms=20, admin_token="t0ken",
                    gateway_keys="k3y", http_port=free_port(), http_idle_timeout_s=0.5)


@pytest.fixture
async def http(client: EventClient, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_app(settings), headers={"Authorization": "Bearer t0ken"})


def nested(depth: int) -> bytes:
    return b'{"title":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("path", ["/api/tasks", "/api/mail", "/api/events", "/api/tasks/T1/claim"])
async def test_json_nested_300_deep_is_a_400(http: Client, path: str) -> None:
    r = await http.post(path, data=nested(300), headers={"Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["error"]["code"] == "bad_json"


async def raw_request(http: Client, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(http.host, http.port)
    writer.write(head)
    await writer.drain()
    answer = await reader.read(200)
    writer.close()
    return answer


@pytest.mark.parametrize("path", ["/api/admin/backends", "/v1/models"])
@pytest.mark.parametrize("token", [b"\xff\xfe", "caf\u00e9".encode(), b"\xe2\x82"])
async def test_a_non_ascii_authorization_header_is_a_401(http: Client, path: str, token: bytes) -> None:
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
    answer = await raw_request(http, head + b"Authorization: Bearer " + token + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401"), answer


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/json; charset=latin-1"])
async def test_odd_content_types_are_answered_as_json_errors_not_500(http: Client, content_type: str) -> None:
    r = await http.post("/api/tasks", data=b"title=x", headers={"Content-Type": content_type})
    assert r.status == 400


@pytest.fixture
async def served(client: EventClient, settings: Settings) -> AsyncIterator[Settings]:
    async with in_task(lambda task_status: serve(settings, task_status=task_status)):
        yield settings


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"], ids=["idle", "half-sent headers"])
async def test_idle_and_half_sent_connections_are_closed(served: Settings, sent: bytes) -> None:
    reader, writer = await asyncio.open_connection(served.http_host, served.http_port)
    writer.write(sent)
    await writer.drain()
    with anyio.fail_after(10):
        rest = await reader.read()  # b"" once the server closed the connection
    writer.close()
    assert b"200 OK" not in rest


async def test_rejects_come_in_pages_with_their_payloads_cut(
    http: Client, client: EventClient, settings: Settings, nats_url: str
) -> None:
    async with running(ProjectorHost(settings, client.nc, ["agents"])):
        for i in range(5):
            await raw_pub(nats_url, f"agents.a{i}.heartbeat", b'{"status":5,"note":"' + b"x" * 300_000 + b'"}')

        async def page(offset: int) -> dict[str, Any]:
            r = await http.get(f"/api/rejects?projection=agents&limit=2&offset={offset}")
            assert r.status == 200
            return await r.json()  # type: ignore[no-any-return]

        first = await eventually(lambda: _full(page(0)), timeout=10)
    assert first["truncated"] is True and first["next_offset"] == 2
    assert all(len(r["payload"]) <= 2048 and r["payload_bytes"] > 300_000 for r in first["rejects"])


async def _full(answer: Awaitable[dict[str, Any]]) -> dict[str, Any] | None:
    body = await answer
    return body if len(body["rejects"]) == 2 and body["truncated"] else None


@pytest.mark.parametrize("path", ["/api/agents?after=TASKS:1", "/api/tasks?after=AGENTS:x",
                                  "/api/rejects?after=AGENTS:1"])
async def test_an_after_the_read_cannot_wait_for_is_a_422_naming_it(http: Client, path: str) -> None:
    r = await http.get(path)
    body = await r.json()
    assert r.status == 422 and body["error"]["code"] == "validation" and body["error"]["field"] == "after"
