"""Tasks and mail over HTTP end to end: gateway -> tasks service -> JetStream -> projector -> HTTP.

Everything is real (nats-server, the tasks service, the projector, DuckDB); the one in-test
responder only pins the mapping of the service's error codes onto HTTP statuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from aiohttp.test_utils import TestClient

from events.core.client import EventClient
from services.gateway.app import create_app
from services.projector.service import ProjectorHost
from services.settings import Settings
from services.tasks.service import TasksService
from tests.hosting import raw_pub, running
from tests.polling import eventually
from tests.services.gateway.admin_auth import ADMIN_TOKEN, AS_ADMIN

Client = TestClient[Any, Any]


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return Settings(admin_token=ADMIN_TOKEN, nats_url=nats_url, home=str(tmp_path), batch_ms=20, snapshot_interval_s=5,
                    request_timeout_s=2.0)


@pytest.fixture
async def projector(client: EventClient, settings: Settings) -> AsyncIterator[ProjectorHost]:
    async with running(ProjectorHost(settings, client.nc, ["tasks"])) as host:
        yield host


@pytest.fixture
async def service(client: EventClient, nats_url: str) -> AsyncIterator[TasksService]:
    nc = await nats.connect(nats_url)
    try:
        async with running(TasksService(nc)) as svc:  # type: ignore[arg-type]
            yield svc
    finally:
        await nc.close()


@pytest.fixture
async def http(projector: ProjectorHost, service: TasksService, settings: Settings,
               aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_app(settings), headers=AS_ADMIN)


async def ok(http: Client, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await http.post(path, json=body or {})
    assert r.status in (200, 201), await r.text()
    return await r.json()  # type: ignore[no-any-return]


async def create(http: Client, task_id: str, **fields: Any) -> dict[str, Any]:
    return await ok(http, "/api/tasks", {"task_id": task_id, "title": f"title of {task_id}", **fields})


async def get(http: Client, path: str) -> Any:
    r = await http.get(path)
    assert r.status == 200, await r.text()
    return await r.json()


async def actionable_ids(http: Client, query: str = "") -> list[str]:
    return [t["id"] for t in (await get(http, f"/api/tasks/actionable{query}"))["tasks"]]


async def until_history(http: Client, task_id: str, n: int) -> list[dict[str, Any]]:
    async def history() -> Any:
        r = await http.get(f"/api/tasks/{task_id}")
        return r.status == 200 and len((body := await r.json())["history"]) >= n and body["history"]

    return await eventually(history, what=f"{n} events of {task_id} in the read model")  # type: ignore[no-any-return]


async def test_a_second_claim_published_raw_is_a_noop_and_every_reader_keeps_the_first_claimer(
    http: Client, nats_url: str,
) -> None:
    await create(http, "TC-FLOW-001")
    claimed = await ok(http, "/api/tasks/TC-FLOW-001/claim", {"agent_id": "architect"})
    assert claimed["task"]["claimed_by"] == "architect"
    await raw_pub(nats_url, "tasks.TC-FLOW-001.claimed", b'{"agent_id":"coo"}')

    history = await until_history(http, "TC-FLOW-001", 3)
    assert [(h["event"], h["actor"]) for h in history] == [
        ("created", None), ("claimed", "architect"), ("claimed", "coo")]
    assert history[1]["noop_reason"] is None
    assert history[2]["noop_reason"] == "task TC-FLOW-001 is already claimed by architect"
    assert history[2]["data"] == {"agent_id": "coo"}
    task = (await get(http, "/api/tasks/TC-FLOW-001"))["task"]
    assert task["status"] == "claimed" and task["claimed_by"] == "architect"
    # the command service folded the same stream: coo is told architect holds it
    r = await http.post("/api/tasks/TC-FLOW-001/start", json={"agent_id": "coo"})
    assert r.status == 409 and "architect" in (await r.json())["error"]["message"]
    assert (await ok(http, "/api/tasks/TC-FLOW-001/start", {"agent_id": "architect"}))["task"]["status"] == "working"


async def test_actionable_orders_a_mixed_set_exactly_by_the_rule(http: Client) -> None:
    for task_id, kind, priority in [("C-P0", "creative", "P0"), ("R-P2", "regular", "P2"),
                                    ("R-P0-a", "regular", "P0"), ("F-P1", "fix", "P1"),
                                    ("R-P0-b", "regular", "P0"), ("F-P0", "fix", "P0"),
                                    ("R-P1", "regular", "P1")]:
        await create(http, task_id, type=kind, priority=priority)
    await create(http, "R-P1-sub", parent_id="R-P1", type="regular", priority="P1")
    await create(http, "Waits", depends_on=["R-P2"], type="fix", priority="P0")
    await create(http, "Taken", type="fix", priority="P0")
    await ok(http, "/api/tasks/Taken/claim", {"agent_id": "architect"})
    await create(http, "For-coo", assignee="coo", type="fix", priority="P0")

    expected = ["F-P0", "For-coo", "F-P1", "R-P0-a", "R-P0-b", "R-P1-sub", "R-P2", "C-P0"]

    async def listed() -> Any:
        got = await actionable_ids(http, "?agent=coo")
        return got == expected or None

    await eventually(listed, what=f"actionable == {expected}")
    without_coo = [t for t in expected if t != "For-coo"]
    assert await actionable_ids(http, "?agent=architect") == without_coo
    assert await actionable_ids(http, "?agent=coo&limit=3") == expected[:3]
    r = await http.get("/api/tasks/actionable?limit=0")
    assert r.status == 422 and (await r.json())["error"]["field"] == "limit"


async def test_a_claim_of_a_task_whose_dependencies_are_open_is_409_naming_them(http: Client) -> None:
    await create(http, "D1")
    await create(http, "D2")
    await create(http, "D3")
    await create(http, "T", depends_on=["D1", "D2", "D3"])
    for verb in ("claim", "start", "submit"):
        await ok(http, f"/api/tasks/D2/{verb}", {"agent_id": "architect"})
    await ok(http, "/api/tasks/D2/approve", {"by": "coo"})

    r = await http.post("/api/tasks/T/claim", json={"agent_id": "architect"})
    assert r.status == 409
    message = (await r.json())["error"]["message"]
    assert "D1" in message and "D3" in message and "D2" not in message


async def test_a_parent_is_not_actionable_while_a_child_is_open(http: Client) -> None:
    await create(http, "P")
    await create(http, "P-1", parent_id="P")
    await eventually(lambda: _is(http, ["P-1"]), what="only the child actionable")
    r = await http.post("/api/tasks/P/claim", json={"agent_id": "architect"})
    assert r.status == 409 and "P-1" in (await r.json())["error"]["message"]

    await ok(http, "/api/tasks/P-1/void", {"by": "coo", "reason": "not needed"})
    await eventually(lambda: _is(http, ["P"]), what="the parent actionable once the child is void")
    tree = await get(http, "/api/tasks/P/tree")
    assert [(t["id"], t["depth"], t["status"]) for t in tree["tasks"]] == [("P", 0, "pending"), ("P-1", 1, "void")]


async def _is(http: Client, ids: list[str]) -> bool:
    return await actionable_ids(http) == ids


async def test_a_task_shows_its_history_attempts_outputs_and_comments(http: Client) -> None:
    await create(http, "T1", project="p1")
    await ok(http, "/api/tasks/T1/claim", {"agent_id": "architect"})
    await ok(http, "/api/tasks/T1/start_attempt", {"agent_id": "architect", "session_id": "s1"})
    await ok(http, "/api/tasks/T1/add_output", {"agent_id": "architect", "type": "code", "title": "patch"})
    await ok(http, "/api/tasks/T1/comment", {"author": "coo", "body": "ship it"})
    await until_history(http, "T1", 5)
    task = await get(http, "/api/tasks/T1")
    assert task["task"]["id"] == "T1" and task["task"]["outputs"] == 1 and task["task"]["comments"] == 1
    assert [a["session_id"] for a in task["attempts"]] == ["s1"]
    assert [o["title"] for o in task["outputs"]] == ["patch"]
    assert [c["body"] for c in task["comments"]] == ["ship it"]
    listed = await get(http, "/api/tasks?status=claimed&project=p1&agent=architect")
    assert [t["id"] for t in listed["tasks"]] == ["T1"]
    assert (await get(http, "/api/tasks?status=done"))["tasks"] == []


async def test_unknown_ids_verbs_and_bad_input_get_clear_answers(http: Client) -> None:
    r = await http.get("/api/tasks/nobody")
    assert r.status == 404 and "nobody" in (await r.json())["error"]["message"]
    assert (await http.get("/api/tasks/nobody/tree")).status == 404
    r = await http.post("/api/tasks/T1/fly", json={})
    assert r.status == 404 and "fly" in (await r.json())["error"]["message"]
    r = await http.post("/api/tasks/nobody/claim", json={"agent_id": "architect"})
    assert r.status == 404 and "nobody" in (await r.json())["error"]["message"]
    r = await http.post("/api/tasks", json={"task_id": "T9", "title": "x", "priority": "P7"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "$.priority"
    r = await http.post("/api/tasks/T9/claim", json={"task_id": "T8", "agent_id": "a"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "$.task_id"
    r = await http.get("/api/tasks?status=sleeping")
    assert r.status == 422 and (await r.json())["error"]["field"] == "status"
    assert (await http.get("/api/tasks/bad%20id")).status == 422


async def test_mail_is_sent_listed_in_the_inbox_and_read(http: Client) -> None:
    sent = await ok(http, "/api/mail", {"message_id": "m1", "from": "coo", "to": "architect",
                                        "performative": "request", "subject": "plan?"})
    assert sent["seq"] >= 1

    async def inbox() -> Any:
        body = await get(http, "/api/agents/architect/inbox")
        return body["messages"] and body

    box = await eventually(inbox, what="m1 in the inbox")
    assert (box["unread"], box["unanswered"]) == (1, 1) and box["messages"][0]["from_agent"] == "coo"
    r = await http.post("/api/mail/m1/read", json={"agent_id": "coo"})
    assert r.status == 409
    await ok(http, "/api/mail/m1/read", {"agent_id": "architect"})
    await eventually(lambda: _unread(http, "architect", 0), what="m1 read")
    assert (await get(http, "/api/agents/nobody/inbox"))["messages"] == []


async def _unread(http: Client, agent: str, n: int) -> bool:
    return (await get(http, f"/api/agents/{agent}/inbox"))["unread"] == n


# --- the HTTP mapping of the service's answers, pinned with a stand-in responder ---------------


@pytest.fixture
async def bare(settings: Settings, client: EventClient, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    """The gateway with no tasks service running."""
    return await aiohttp_client(create_app(settings), headers=AS_ADMIN)


@pytest.mark.parametrize(("code", "status", "http_code"), [
    ("invalid", 422, "validation"), ("not_found", 404, "not_found"), ("conflict", 409, "conflict"),
    ("unavailable", 503, "unavailable"),
])
async def test_service_error_codes_map_to_http_statuses(
    bare: Client, client: EventClient, code: str, status: int, http_code: str
) -> None:
    seen: list[dict[str, Any]] = []

    async def answer(msg: Any) -> None:
        if msg.data == b"probe":
            await msg.respond(b"pong")
            return
        seen.append(orjson.loads(msg.data))
        await msg.respond(orjson.dumps({"ok": False, "error": {"code": code, "message": f"said {code}", "field": "$.x"}}))

    sub = await client.nc.subscribe("cmd.tasks.claim", cb=answer)
    # a round trip on the same connection proves the server has the subscription (flush does not)
    await client.nc.request("cmd.tasks.claim", b"probe", timeout=5)
    try:
        r = await bare.post("/api/tasks/T1/claim", json={"agent_id": "a"})
    finally:
        await sub.unsubscribe()
    body = await r.json()
    assert r.status == status and body["error"]["code"] == http_code and body["error"]["message"] == f"said {code}"
    assert body["error"]["field"] == "$.x"
    assert seen == [{"agent_id": "a", "task_id": "T1"}]


async def test_no_tasks_service_is_503(bare: Client) -> None:
    r = await bare.post("/api/tasks/T1/claim", json={"agent_id": "a"})
    assert r.status == 503 and "cmd.tasks.claim" in (await r.json())["error"]["message"]
