"""The tasks command service against a real nats-server: claims that cannot race, atomic fixes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import nats
import pytest

from events.core.client import EventClient
from events.core.streams import stream_name
from events.tasks import TaskCommented, TaskProgressed
from services.tasks.service import MAX_TRIES, TasksService

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def service(url: str) -> AsyncIterator[TasksService]:
    """One replica on a connection of its own, run in a task of its own."""
    nc = await nats.connect(url)
    svc = TasksService(nc)
    started = asyncio.Event()

    async def owner() -> None:
        import anyio

        async with anyio.create_task_group() as tg:
            await tg.start(svc.run)
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(owner())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield svc
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await nc.close()


async def req(nc: Any, verb: str, body: dict[str, Any]) -> dict[str, Any]:
    msg = await nc.request(f"cmd.tasks.{verb}", msgspec.json.encode(body), timeout=10)
    return msgspec.json.decode(msg.data)


async def test_create_claim_start_reply_with_events_and_state(client: EventClient, nats_url: str) -> None:
    async with service(nats_url):
        created = await req(client.nc, "create", {"task_id": "TC-FLOW-001", "title": "flow"})
        assert created["ok"], created
        assert created["events"][0]["subject"] == "tasks.TC-FLOW-001.created"
        assert created["task"]["status"] == "pending"
        claimed = await req(client.nc, "claim", {"task_id": "TC-FLOW-001", "agent_id": "architect"})
        assert claimed["ok"] and claimed["task"]["claimed_by"] == "architect", claimed
        again = await req(client.nc, "claim", {"task_id": "TC-FLOW-001", "agent_id": "coo"})
        assert again == {"ok": False, "error": {"code": "conflict", "message": "task TC-FLOW-001 is claimed by architect"}}
        same = await req(client.nc, "claim", {"task_id": "TC-FLOW-001", "agent_id": "architect"})
        assert same["ok"] and same["events"] == [] and same["seq"] == claimed["seq"]


async def count(client: EventClient, subject: str) -> int:
    info = await client.js.stream_info(stream_name("tasks"), subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def last_seq(client: EventClient, domain: str = "tasks") -> int:
    return (await client.js.stream_info(stream_name(domain))).state.last_seq


async def test_hundred_claimers_on_two_replicas_one_wins_the_others_are_told_who(
    client: EventClient, nats_url: str
) -> None:
    async with service(nats_url), service(nats_url):
        assert (await req(client.nc, "create", {"task_id": "TC-RACE", "title": "race"}))["ok"]
        conns = [await nats.connect(nats_url) for _ in range(100)]
        try:
            go = asyncio.Event()

            async def claim(i: int) -> dict[str, Any]:
                await go.wait()
                return await req(conns[i], "claim", {"task_id": "TC-RACE", "agent_id": f"agent-{i:03d}"})

            racers = [asyncio.create_task(claim(i)) for i in range(100)]
            go.set()
            replies = await asyncio.gather(*racers)
        finally:
            await asyncio.gather(*(c.close() for c in conns))
    winners = [r for r in replies if r["ok"]]
    assert len(winners) == 1, winners
    winner = winners[0]["task"]["claimed_by"]
    losers = [r["error"] for r in replies if not r["ok"]]
    assert len(losers) == 99
    assert {e["code"] for e in losers} == {"conflict"}
    assert {e["message"] for e in losers} == {f"task TC-RACE is claimed by {winner}"}
    assert await count(client, "tasks.TC-RACE.claimed") == 1


async def test_a_business_failure_creates_fixes_and_fix_pending_in_one_batch(
    client: EventClient, nats_url: str
) -> None:
    async with service(nats_url):
        for verb, body in [("create", {"title": "parent"}), ("claim", {"agent_id": "dev"}),
                           ("start", {"agent_id": "dev"})]:
            assert (await req(client.nc, verb, {"task_id": "TC-P", **body}))["ok"]
        failed = await req(client.nc, "fail", {
            "task_id": "TC-P", "kind": "business", "agent_id": "dev", "error": "step 4 failed",
            "fixes": [{"error": "import path", "fix": "check it"}, {"error": "schema"}],
        })
    assert failed["ok"], failed
    assert [(e["subject"], e["seq"]) for e in failed["events"]] == [
        ("tasks.TC-P.failed", 4), ("tasks.FIX-TC-P-001.created", 5), ("tasks.FIX-TC-P-002.created", 6),
        ("tasks.TC-P.fix_requested", 7),
    ]
    assert failed["task"]["status"] == "fix_pending"
    assert failed["task"]["fix_ids"] == ["FIX-TC-P-001", "FIX-TC-P-002"]


class Interfering(EventClient):
    """Another writer moves the parent between each of the first `times` decisions and its append."""

    def __init__(self, nc: Any, writer: EventClient, times: int) -> None:
        super().__init__(nc)
        self.writer, self.left = writer, times

    async def append_batch(self, entries: Any, *, headers: Any = None) -> list[int]:
        if self.left:
            self.left -= 1
            await self.writer.publish("TC-P", TaskProgressed(agent_id="dev", note=f"raw {self.left}"))
        return await super().append_batch(entries, headers=headers)


async def test_a_refused_batch_leaves_no_fix_and_no_failure(client: EventClient, nats_url: str) -> None:
    async with service(nats_url) as svc:
        for verb, body in [("create", {"title": "parent"}), ("claim", {"agent_id": "dev"})]:
            assert (await req(client.nc, verb, {"task_id": "TC-P", **body}))["ok"]
        svc.client = Interfering(svc.nc, client, times=MAX_TRIES)
        failed = await req(client.nc, "fail", {"task_id": "TC-P", "kind": "business", "error": "boom"})
        assert failed["ok"] is False and failed["error"]["code"] == "conflict", failed
        assert failed["error"]["message"].startswith("task TC-P is claimed, claimed by dev: still changing")
        assert await count(client, "tasks.*.created") == 1
        assert await count(client, "tasks.TC-P.failed") == 0
        assert await count(client, "tasks.TC-P.progressed") == MAX_TRIES
        assert await last_seq(client) == 2 + MAX_TRIES  # created, claimed, the other writer's


async def test_a_batch_refused_once_is_decided_again_on_the_new_state(client: EventClient, nats_url: str) -> None:
    async with service(nats_url) as svc:
        for verb, body in [("create", {"title": "parent"}), ("claim", {"agent_id": "dev"})]:
            assert (await req(client.nc, verb, {"task_id": "TC-P", **body}))["ok"]
        # a raw publisher wrote on the first fix id's subject: not a task, but its seq counts
        await client.publish("FIX-TC-P-001", TaskCommented(author="someone", body="mine"))
        svc.client = Interfering(svc.nc, client, times=1)
        failed = await req(client.nc, "fail", {"task_id": "TC-P", "kind": "business", "error": "boom"})
    assert failed["ok"], failed
    assert [e["subject"] for e in failed["events"]] == [
        "tasks.TC-P.failed", "tasks.FIX-TC-P-001.created", "tasks.TC-P.fix_requested"]
    assert [e["seq"] for e in failed["events"]] == [5, 6, 7]  # 4 is the other writer's
    assert await count(client, "tasks.TC-P.failed") == 1


async def test_five_system_failures_require_a_person(client: EventClient, nats_url: str) -> None:
    async with service(nats_url):
        assert (await req(client.nc, "create", {"task_id": "TC-S", "title": "flaky"}))["ok"]
        statuses = []
        for n in range(5):
            r = await req(client.nc, "fail", {"task_id": "TC-S", "error": f"ECONNRESET {n}"})
            assert r["ok"], r
            statuses.append((r["task"]["status"], r["task"]["retry_count"], [e["event"] for e in r["events"]]))
    assert statuses == [
        ("pending", 1, ["failed", "retry_scheduled"]),
        ("pending", 2, ["failed", "retry_scheduled"]),
        ("pending", 3, ["failed", "root_cause_requested", "retry_scheduled"]),
        ("pending", 4, ["failed", "retry_scheduled"]),
        ("requires_manual", 5, ["failed", "escalated"]),
    ]


async def test_bad_requests_are_refused_naming_the_field(client: EventClient, nats_url: str) -> None:
    async with service(nats_url):
        unknown = await req(client.nc, "create", {"task_id": "T1", "title": "x", "colour": "red"})
        missing = await req(client.nc, "claim", {"agent_id": "dev"})
        bad_id = await req(client.nc, "claim", {"task_id": "a.b", "agent_id": "dev"})
        nothing = await req(client.nc, "claim", {"task_id": "T-NONE", "agent_id": "dev"})
        raw = await client.nc.request("cmd.tasks.claim", b"[1]", timeout=5)
    assert unknown["error"]["code"] == "invalid" and unknown["error"]["field"] == "$.colour"
    assert missing["error"] == {"code": "invalid", "message": "missing required field `task_id`", "field": "$.task_id"}
    assert bad_id["error"]["code"] == "invalid" and bad_id["error"]["field"] == "$.task_id"
    assert nothing["error"] == {"code": "not_found", "message": "task T-NONE does not exist"}
    assert msgspec.json.decode(raw.data)["error"]["code"] == "invalid"


async def test_a_claim_waits_for_dependencies_naming_them(client: EventClient, nats_url: str) -> None:
    async with service(nats_url):
        for t in ("A", "B"):
            assert (await req(client.nc, "create", {"task_id": t, "title": t}))["ok"]
        made = await req(client.nc, "create", {"title": "c", "depends_on": ["A", "B"]})
        assert made["ok"] and made["task"]["id"].startswith("T-")
        refused = await req(client.nc, "claim", {"task_id": made["task"]["id"], "agent_id": "dev"})
    assert refused["error"] == {"code": "conflict", "message": f"task {made['task']['id']} waits for A, B"}


async def test_mail_is_sent_read_and_answered(client: EventClient, nats_url: str) -> None:
    async with service(nats_url):
        sent = await req(client.nc, "send_mail", {"from": "coo", "to": "architect", "performative": "request", "body": "?"})
        mid = sent["message"]["id"]
        assert sent["ok"] and mid.startswith("M-") and sent["events"][0]["subject"] == f"mail.{mid}.sent"
        wrong = await req(client.nc, "read_mail", {"message_id": mid, "agent_id": "coo"})
        assert wrong["error"]["code"] == "conflict"
        read = await req(client.nc, "read_mail", {"message_id": mid, "agent_id": "architect"})
        assert read["ok"] and read["message"]["read_at"]
        reply = await req(client.nc, "send_mail", {"message_id": "M-R1", "from": "architect", "to": "coo",
                                                   "in_reply_to": mid, "body": "!"})
    assert [e["subject"] for e in reply["events"]] == ["mail.M-R1.sent", f"mail.{mid}.replied"]
    assert reply["message"]["in_reply_to"] == mid


async def test_decisions_carry_the_actor_and_a_span(client: EventClient, nats_url: str, spans: Any) -> None:
    async with service(nats_url):
        made = await req(client.nc, "create", {"task_id": "T-A", "title": "a", "by": "coo"})
        claimed = await req(client.nc, "claim", {"task_id": "T-A", "agent_id": "architect"})
    for reply, actor in ((made, "coo"), (claimed, "architect")):
        stored = await client.js.get_msg(stream_name("tasks"), reply["seq"])
        assert stored.headers and stored.headers["Agl-Actor"] == actor
    names = [s.name for s in spans.get_finished_spans()]
    assert "cmd.tasks.create" in names and "cmd.tasks.claim" in names


async def test_up_runs_the_tasks_service_before_the_gateway() -> None:
    from services.settings import Settings
    from services.up import default_services

    names = list(default_services(Settings()))
    assert names.index("projector") < names.index("tasks") < names.index("gateway")
