"""The permission matrix over HTTP: the same write policy as NATS, by the caller's own token.

Every refusal is asserted with its status and the rule it names, and nothing of a refused batch
is stored; every allowed row is asserted stored, so the boundary neither leaks nor blocks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient as Client

from events.core.client import EventClient
from services.gateway import auth
from services.gateway.app import create_app
from services.runtime import credentials
from services.settings import Settings, SettingsError
from tests.services.gateway.admin_auth import ADMIN_TOKEN
from tests.services.tasks.test_service import service


def hb(agent: str) -> dict[str, Any]:
    return {"subject": f"agents.{agent}.heartbeat", "data": {"status": "busy"}}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    credentials.issue(tmp_path, "agent:architect")
    credentials.issue(tmp_path, "reader")
    return tmp_path


def bearer(home: Path, name: str) -> dict[str, str]:
    cred = credentials.load(home, name)
    assert cred is not None and cred.token
    return {"Authorization": f"Bearer {cred.token}"}


@pytest.fixture
async def http(
    client: EventClient, nats_url: str, home: Path, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    settings = Settings(home=str(home), nats_url=nats_url, admin_token=ADMIN_TOKEN, projector_name="nobody",
                        query_timeout_s=0.5)
    return await aiohttp_client(create_app(settings))


async def stored(client: EventClient, stream: str = "AGENTS") -> int:
    return (await client.js.stream_info(stream)).state.messages


async def test_writing_without_a_token_is_401_and_a_bad_token_too(http: Client) -> None:
    r = await http.post("/api/events", json=hb("architect"))
    assert r.status == 401 and "Bearer" in (await r.json())["error"]["message"]
    r = await http.post("/api/events", json=hb("architect"), headers={"Authorization": "Bearer agl_agent_architect.forged"})
    assert r.status == 401


async def test_an_agent_writes_its_own_facts_only(http: Client, home: Path, client: EventClient) -> None:
    me = bearer(home, "agent:architect")
    r = await http.post("/api/events", json=hb("architect"), headers=me)
    assert r.status == 200 and (await r.json())["accepted"] == 1
    r = await http.post("/api/events", json=[hb("architect"), hb("coo")], headers=me)
    assert r.status == 403
    err = (await r.json())["error"]
    assert "agent architect may write only agents.architect.heartbeat" in err["message"]
    assert err["field"] == "$[1].subject"
    assert await stored(client) == 1  # nothing of the refused batch


@pytest.mark.parametrize(("subject", "rule"), [
    ("providers.b1.updated", "providers.*.updated is written only by the gateway: the admin API"),
    ("providers.b1.deleted", "providers.*.deleted is written only by the gateway"),
    ("usage.b1.completed", "usage.*.completed is written only by the gateway's provider proxy"),
    ("tasks.T1.claimed", "tasks.*.claimed is written only by the tasks service"),
    ("mail.M1.sent", "mail.*.sent is written only by the tasks service"),
])
async def test_state_a_service_decides_is_403_naming_the_rule_for_agents_and_admin(
    http: Client, home: Path, subject: str, rule: str
) -> None:
    for headers in (bearer(home, "agent:architect"), {"Authorization": f"Bearer {ADMIN_TOKEN}"}):
        r = await http.post("/api/events", json={"subject": subject, "data": {}}, headers=headers)
        assert r.status == 403, (subject, headers)
        assert rule in (await r.json())["error"]["message"]


async def test_an_agent_cannot_say_it_was_woken_the_dispatcher_does(http: Client, home: Path) -> None:
    r = await http.post("/api/events", json={"subject": "agents.architect.woken", "data": {}},
                        headers=bearer(home, "agent:architect"))
    assert r.status == 403 and "agents.*.woken is written only by" in (await r.json())["error"]["message"]


async def test_the_admin_writes_any_agent_fact(http: Client, client: EventClient) -> None:
    r = await http.post("/api/events", json=hb("coo"), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status == 200


async def test_a_reader_reads_and_never_writes(http: Client, home: Path) -> None:
    r = await http.post("/api/events", json=hb("architect"), headers=bearer(home, "reader"))
    assert r.status == 403 and "may only read" in (await r.json())["error"]["message"]
    r = await http.get("/api/agents", headers=bearer(home, "reader"))
    assert r.status not in (401, 403)


async def test_reads_need_a_token_when_read_auth_is_token(
    client: EventClient, nats_url: str, home: Path, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    settings = Settings(home=str(home), nats_url=nats_url, admin_token=ADMIN_TOKEN, read_auth="token",
                        projector_name="nobody", query_timeout_s=0.5)
    http = await aiohttp_client(create_app(settings))
    assert (await http.get("/api/agents")).status == 401
    assert (await http.get("/api/agents", headers=bearer(home, "reader"))).status not in (401, 403)
    assert (await http.get("/health")).status in (200, 503)


async def test_an_agent_sends_commands_only_as_itself(http: Client, home: Path, nats_url: str) -> None:
    me = bearer(home, "agent:architect")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with service(nats_url):
        assert (await http.post("/api/tasks", json={"task_id": "T1", "title": "t"}, headers=admin)).status == 201
        r = await http.post("/api/tasks/T1/claim", json={"agent_id": "coo"}, headers=me)
        assert r.status == 403 and "only as itself" in (await r.json())["error"]["message"]
        r = await http.post("/api/tasks/T1/claim", json={}, headers=me)
        assert r.status == 200 and (await r.json())["task"]["claimed_by"] == "architect"


async def test_admin_routes_refuse_agent_tokens(http: Client, home: Path) -> None:
    r = await http.get("/api/admin/backends", headers=bearer(home, "agent:architect"))
    assert r.status == 401


def test_a_gateway_beyond_loopback_without_credentials_refuses_to_start() -> None:
    with pytest.raises(SettingsError, match="refusing to listen on 0.0.0.0"):
        auth.check_listen(Settings(http_host="0.0.0.0"))
    auth.check_listen(Settings(http_host="0.0.0.0", admin_token=ADMIN_TOKEN))
    auth.check_listen(Settings(http_host="127.0.0.1"))


async def test_the_calendar_backend_routes_follow_the_same_rules(http: Client, home: Path) -> None:
    me = bearer(home, "agent:architect")
    r = await http.post("/calendar/agent/status", json={"agent_id": "coo", "status": "busy"}, headers=me)
    assert r.status == 403 and "only its own status" in (await r.json())["error"]["message"]
    assert (await http.post("/calendar/agent/status", json={"agent_id": "coo", "status": "busy"})).status == 401
    r = await http.post("/api/calendar/slots", json={"agent_id": "architect", "scheduled_at": "09:00"}, headers=me)
    assert r.status == 403 and "admin only" in (await r.json())["error"]["message"]


async def test_a_revoked_agent_token_is_refused_at_the_next_request(http: Client, home: Path) -> None:
    me = bearer(home, "agent:architect")
    assert (await http.post("/api/events", json=hb("architect"), headers=me)).status == 200
    assert credentials.revoke(home, "agent:architect")
    r = await http.post("/api/events", json=hb("architect"), headers=me)
    assert r.status == 401 and "not valid" in (await r.json())["error"]["message"]


async def test_issuing_again_revokes_the_old_token_only(http: Client, home: Path) -> None:
    old = bearer(home, "agent:architect")
    reader = bearer(home, "reader")
    credentials.issue(home, "agent:architect")
    new = bearer(home, "agent:architect")
    assert new != old
    assert (await http.post("/api/events", json=hb("architect"), headers=old)).status == 401
    assert (await http.post("/api/events", json=hb("architect"), headers=new)).status == 200
    assert (await http.get("/api/agents", headers=reader)).status != 401  # the others keep theirs
