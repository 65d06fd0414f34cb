"""The admin API end to end: gateway -> PROVIDERS (decide + OCC append) -> projector -> HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from events import providers as p
from events.core.client import EventClient
from events.core.keyring import Keyring, new_key
from events.usage import UsageCompleted
from services.gateway.app import create_app
from services.gateway.keys import PROXY
from services.projector.service import ProjectorHost
from services.settings import Settings
from tests.hosting import running
from tests.polling import eventually

Client = TestClient[Any, Any]
TOKEN = "adm-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KEY = "sk-live-ABCDEF0123456789xyz"
RING = Keyring({"k1": new_key()})


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return Settings(nats_url=nats_url, home=str(tmp_path), batch_ms=20, request_timeout_s=2.0,
                    admin_token=TOKEN, keyring=RING.to_env_value())


@pytest.fixture
async def projector(client: EventClient, settings: Settings) -> AsyncIterator[ProjectorHost]:
    async with running(ProjectorHost(settings, client.nc, ["providers"])) as host:
        yield host


@pytest.fixture
async def http(projector: ProjectorHost, settings: Settings,
               aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_app(settings))


BODY = {"id": "bkd_a", "name": "A", "label": "first", "api_base_url": "http://up.local/v1", "api_key": KEY,
        "pool": "primary", "rpm_limit": 60, "timeout_seconds": 30, "enabled": True,
        "model_mappings": {"gpt": {"native_id": "gpt-4o", "cost": {"input": 0.001, "output": 0.002}}}}


async def call(http: Client, method: str, path: str, status: int = 200, **kw: Any) -> Any:
    r = await http.request(method, path, headers=kw.pop("headers", AUTH), **kw)
    assert r.status == status, await r.text()
    return await r.json()


async def test_without_a_token_configured_the_admin_api_is_disabled_not_open(
    client: EventClient, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    off = await aiohttp_client(create_app(Settings(nats_url=settings.nats_url, home=settings.home)))
    for headers in ({}, {"Authorization": "Bearer "}, AUTH):
        body = await call(off, "GET", "/api/admin/backends", 404, headers=headers)
        assert body["error"]["code"] == "disabled"
    assert (await call(off, "POST", "/api/admin/backends", 404, headers={}, json=BODY))["error"]["code"] == "disabled"


async def test_a_wrong_or_missing_token_is_401(http: Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
        assert (await call(http, "GET", "/api/admin/pools", 401, headers=headers))["error"]["code"] == "unauthorized"


async def test_backend_lifecycle_with_masked_keys(http: Client, client: EventClient) -> None:
    made = await call(http, "POST", "/api/admin/backends", 201, json=BODY)
    assert made["api_key"] == "sk-liv****9xyz" and made["key_id"] == "k1" and made["rpm_limit"] == 60
    assert made["model_mappings"]["gpt"]["native_id"] == "gpt-4o" and made["after"] == "PROVIDERS:1"
    assert (await call(http, "POST", "/api/admin/backends", 409, json=BODY))["error"]["code"] == "conflict"
    listed = await call(http, "GET", "/api/admin/backends")
    assert [b["id"] for b in listed["backends"]] == ["bkd_a"]
    changed = await call(http, "PUT", "/api/admin/backends/bkd_a", json={"rpm_limit": 5, "api_key": "sk-new-0000111122223333"})
    assert (changed["rpm_limit"], changed["api_key"], changed["label"]) == (5, "sk-new****3333", "first")
    assert changed["after"] == "PROVIDERS:3"  # updated, then key_rotated
    assert (await call(http, "GET", "/api/admin/backends/bkd_a"))["api_key"] == "sk-new****3333"
    pools = (await call(http, "GET", "/api/admin/pools"))["pools"]
    assert pools["primary"] == {"total": 1, "enabled": 1, "healthy": 1, "cooling": 0, "degraded": 0, "down": 0}
    assert (await call(http, "DELETE", "/api/admin/backends/bkd_a"))["after"] == "PROVIDERS:4"
    await call(http, "GET", "/api/admin/backends/bkd_a", 404)
    await call(http, "DELETE", "/api/admin/backends/bkd_a", 404)
    assert (await call(http, "GET", "/api/admin/backends"))["backends"] == []


async def test_invalid_bodies_are_422_and_never_echo_the_key(http: Client) -> None:
    for bad, field in (({**BODY, "pool": "third"}, "$.pool"), ({**BODY, "api_key": ""}, "$.api_key"),
                       ({**BODY, "api_base_url": "ftp://x"}, "$.api_base_url"), ({**BODY, "colour": 1}, "$.colour")):
        r = await http.post("/api/admin/backends", headers=AUTH, json=bad)
        text = await r.text()
        assert r.status == 422, text
        assert (await r.json())["error"]["field"] == field and KEY not in text


async def test_stats_come_from_the_providers_projection(http: Client, client: EventClient) -> None:
    await call(http, "POST", "/api/admin/backends", 201, json=BODY)
    now = datetime.now(UTC)
    for i in range(20):
        await client.publish("bkd_a", UsageCompleted(model="gpt", status=200 if i else 500, prompt_tokens=3,
                                                     completion_tokens=2, cost=0.25, latency_ms=float(i + 1)))
    await client.publish("bkd_a", p.CooldownStarted(until=now + timedelta(seconds=30), length_s=30))

    async def total() -> Any:
        body = await call(http, "GET", "/api/admin/stats/total")
        return body["total_requests"] == 20 and body

    t = await eventually(total, 30)
    assert (t["total_errors"], t["total_tokens"], t["total_cost"]) == (1, 100, 5.0)
    hourly = (await call(http, "GET", "/api/admin/stats/hourly?backend_id=bkd_a&hours=72"))["rows"]
    assert hourly[0]["requests"] == 20 and hourly[0]["p95_latency_ms"] == pytest.approx(19.05)
    assert (await call(http, "GET", "/api/admin/stats/hourly?backend_id=other"))["rows"] == []
    assert (await call(http, "GET", "/api/admin/stats/daily?days=30"))["rows"][0]["requests"] == 20
    minutes = (await call(http, "GET", "/api/admin/stats/minutes?minutes=60"))["rows"]
    assert sum(m["requests"] for m in minutes) == t["total_requests"] and minutes[0]["p95_latency_ms"] > 0
    assert (await call(http, "GET", "/api/admin/stats/minutes?minutes=0", 422))["error"]["field"] == "minutes"
    cooldowns = await eventually(lambda: _cooldowns(http), 30)
    assert cooldowns[0]["backend_id"] == "bkd_a" and cooldowns[0]["length_s"] == pytest.approx(30, abs=1)
    assert (await call(http, "GET", "/api/admin/stats/daily?days=0", 422))["error"]["field"] == "days"
    pools = (await call(http, "GET", "/api/admin/pools"))["pools"]
    assert pools["primary"]["cooling"] == 1


async def _cooldowns(http: Client) -> Any:
    return (await call(http, "GET", "/api/admin/stats/cooldown?limit=10"))["cooldowns"]


async def test_a_key_id_missing_from_the_keyring_degrades_the_proxy_and_is_fixed_through_the_admin_api(
    client: EventClient, settings: Settings, projector: ProjectorHost,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    other = Keyring({"k9": new_key()})
    await client.append("bkd_z", [p.BackendCreated(backend_name="Z", api_base_url="http://z.local",
                                                   api_key=other.encrypt(KEY, aad="bkd_z"))], expected_seq=0)
    await client.append("bkd_y", [p.BackendCreated(backend_name="Y", api_base_url="http://y.local",
                                                   api_key=other.encrypt(KEY, aad="bkd_y"))], expected_seq=0)
    http = await aiohttp_client(create_app(settings))  # starts: one bad record never refuses the start
    fold = http.app[PROXY].fold
    assert fold.routable() == []

    async def health() -> Any:
        r = await http.get("/health")
        body = await r.json()
        return r.status == 200 and body["status"] == "degraded" and body

    body = await eventually(health, 30, "/health says the proxy is degraded")
    unroutable = body["proxy"]["unroutable"]
    assert set(unroutable) == {"bkd_y", "bkd_z"} and "'k9'" in unroutable["bkd_z"] and "bkd_z" in unroutable["bkd_z"]
    shown = await call(http, "GET", "/api/admin/backends/bkd_z")
    assert shown["key_id"] == "k9" and "'k9' is not in the keyring" in shown["key_error"] and KEY not in str(shown)

    fixed = await call(http, "PUT", "/api/admin/backends/bkd_z", json={"api_key": "sk-new-0000111122223333"})
    assert (fixed["key_id"], fixed["api_key"]) == ("k1", "sk-new****3333") and "key_error" not in fixed
    await call(http, "DELETE", "/api/admin/backends/bkd_y")
    await eventually(lambda: [b.id for b in fold.routable()] == ["bkd_z"], 10, "bkd_z routable again")
    body = await (await http.get("/health")).json()
    assert body["status"] == "ok" and body["proxy"] == {"status": "ok"}

    without = await aiohttp_client(create_app(Settings(nats_url=settings.nats_url, home=settings.home)))
    await eventually(lambda: set(without.app[PROXY].fold.key_errors) == {"bkd_z"}, 10,
                     "no keyring at all: the backend is named, the gateway still starts")
