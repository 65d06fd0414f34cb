"""Due slots wake idle agents once, busy ones are skipped once with the reason, and a restart
repeats nothing: the scheduler against the seed-like backend, the agents read model and real
JetStream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from events.agents import AgentHeartbeat
from events.calendar import WAKE_MESSAGE, SlotStatusReported
from events.core.client import EventClient
from projections.runtime.protocol import QueryClient
from services.projector.service import ProjectorHost
from services.scheduler.service import Scheduler
from services.settings import Settings
from tests.hosting import in_task, running
from tests.polling import eventually
from tests.services.scheduler.calendar_server import CalendarServer
from tests.services.scheduler.harness import CLAW, Clock, Wakes, new, settings_for

DUE = "T09:00:00Z"


@pytest.fixture
def settings(tmp_path: Path, nats_url: str, seed_url: str) -> Settings:
    return settings_for(tmp_path, nats_url, seed_url)


@pytest.fixture
async def stack(settings: Settings, nc: Any, client: EventClient) -> AsyncIterator[tuple[QueryClient, Wakes]]:
    wakes = Wakes()
    await nc.subscribe("wake.>", cb=wakes.on)
    await nc.flush()
    async with running(ProjectorHost(settings, nc)):
        yield QueryClient(nc, settings.projector_name), wakes


async def agent_is(client: EventClient, queries: QueryClient, agent: str, status: str) -> None:
    await client.publish(agent, AgentHeartbeat(status=status))  # type: ignore[arg-type]
    await eventually(lambda: _status(queries, agent, status), 20, f"{agent} {status} in the agents model")


async def _status(queries: QueryClient, agent: str, status: str) -> bool:
    rows = (await queries.query("agents", "get", id=agent)).records()
    return bool(rows) and rows[0]["status"] == status


def outcomes(s: Scheduler) -> dict[tuple[str, str, str], str]:
    return {(a, k, d[10:]): o for (a, k, d), o in s.history.calendar.outcomes.items()}


async def synced(settings: Settings, nc: Any, clock: Clock) -> Scheduler:
    s = new(settings, nc, clock)
    assert await s.syncer.step() == "full"
    return s


async def test_a_due_slot_wakes_its_idle_agent_exactly_once(settings: Settings, nc: Any, client: EventClient,
                                                            stack: Any) -> None:
    queries, wakes = stack
    await agent_is(client, queries, "dev", "idle")
    clock = Clock()
    s = await synced(settings, nc, clock)
    assert await s.check() == []
    clock.to(9, 1)
    assert [d.wake for d in await s.check()] == [True]
    assert await s.check() == []
    await eventually(lambda: wakes.seen, 10, "the wake on wake.dev")
    assert [(w["agent_id"], w["session_id"], w["message"], [x["id"] for x in w["slots"]]) for w in wakes.seen] == [
        ("dev", "agent:dev:hf-wakeup", WAKE_MESSAGE, ["1"])]
    assert outcomes(await _caught_up(s)) == {("dev", "1", DUE): "woken"}
    rows = await eventually(lambda: _wakes(queries), 20, "the wake in calendar_wakes")
    assert [(r["agent_id"], r["slot_id"], r["outcome"], r["session"]) for r in rows] == [
        ("dev", "1", "woken", "agent:dev:hf-wakeup")]


async def test_a_busy_agent_is_skipped_once_with_the_reason(settings: Settings, nc: Any, client: EventClient,
                                                            stack: Any) -> None:
    queries, wakes = stack
    await agent_is(client, queries, "dev", "busy")
    clock = Clock()
    s = await synced(settings, nc, clock)
    clock.to(9, 1)
    await s.check()
    await s.check()
    assert outcomes(await _caught_up(s)) == {("dev", "1", DUE): "skipped"}
    rows = await eventually(lambda: _wakes(queries), 20, "the skip in calendar_wakes")
    assert [(r["slot_id"], r["outcome"], r["reason"]) for r in rows] == [("1", "skipped", "agent_busy")]
    assert wakes.seen == []


async def test_a_slot_removed_before_its_time_wakes_nobody(settings: Settings, nc: Any, client: EventClient,
                                                           stack: Any, calendar: CalendarServer) -> None:
    queries, wakes = stack
    await agent_is(client, queries, "dev", "idle")
    clock = Clock()
    s = await synced(settings, nc, clock)
    await calendar.remove("dev", "1")
    assert await s.syncer.step() == "diff"
    clock.to(9, 1)
    assert await s.check() == []
    assert outcomes(await _caught_up(s)) == {} and wakes.seen == []


async def test_a_scheduler_killed_and_restarted_across_the_due_time_decides_once(
    settings: Settings, nc: Any, client: EventClient, stack: Any,
) -> None:
    queries, wakes = stack
    await agent_is(client, queries, "dev", "idle")
    clock = Clock()
    async with in_task(Scheduler(settings, nc, clock=clock).run):
        await eventually(lambda: _synced(nc, settings), 20, "the first sync")
    clock.to(9, 5)  # the slot fell due while no scheduler ran
    restarted = Scheduler(settings, nc, clock=clock)
    async with in_task(restarted.run):
        await eventually(lambda: _has_outcome(restarted), 20, "the outcome after the restart")
    again = new(settings, nc, clock)
    await again.history.catch_up()
    assert await again.check() == []
    assert outcomes(again) == {("dev", "1", DUE): "woken"}
    await eventually(lambda: wakes.seen, 10, "the wake")
    assert len(wakes.seen) == 1


async def test_a_slot_missed_while_down_is_skipped_as_outside_its_window(
    settings: Settings, nc: Any, client: EventClient, stack: Any,
) -> None:
    queries, wakes = stack
    await agent_is(client, queries, "dev", "idle")
    clock = Clock()
    s = await synced(settings, nc, clock)
    clock.to(9, 45)  # dev's slot lasts 30 minutes
    assert [(d.wake, d.reason) for d in await s.check()] == [(False, "outside_window")]
    assert wakes.seen == []


async def test_a_failed_wake_is_recorded_as_skipped_with_the_reason(
    tmp_path: Path, nats_url: str, seed_url: str, nc: Any, client: EventClient,
) -> None:
    settings = settings_for(tmp_path, nats_url, seed_url, dispatch_mode="webhook",
                            dispatch_webhook_url="http://127.0.0.1:9/wake")
    async with running(ProjectorHost(settings, nc)):
        queries = QueryClient(nc, settings.projector_name)
        await agent_is(client, queries, "dev", "idle")
        clock = Clock()
        s = await synced(settings, nc, clock)
        clock.to(9, 1)
        decided = await s.check()
    assert [(d.wake, d.reason) for d in decided] == [(False, "wake_failed")]
    assert "127.0.0.1:9" in decided[0].detail
    assert outcomes(await _caught_up(s)) == {("dev", "1", DUE): "skipped"}


async def test_an_agent_status_report_is_forwarded_to_the_backend_once(
    settings: Settings, nc: Any, client: EventClient, stack: Any, calendar: CalendarServer,
) -> None:
    s = await synced(settings, nc, Clock())
    await client.publish("dev", SlotStatusReported(status="busy", slot_id="1", slot_status="started"))
    await s.check()
    await s.check()
    assert calendar.reports == [{"agent_id": "dev", "status": "busy", "slot_id": "1", "slot_status": "started",
                                 "claw_identifier": CLAW}]
    assert len((await _caught_up(s)).history.calendar.forwarded) == 1


async def test_the_claw_sends_its_liveness_heartbeat(settings: Settings, nc: Any, client: EventClient,
                                                     calendar: CalendarServer) -> None:
    async with in_task(Scheduler(settings, nc, clock=Clock()).run):
        await eventually(lambda: calendar.heartbeats >= 1, 20, "a heartbeat")
    assert set(calendar.claws) == {CLAW}


async def _caught_up(s: Scheduler) -> Scheduler:
    await s.history.catch_up()
    return s


async def _wakes(queries: QueryClient) -> list[dict[str, Any]]:
    return (await queries.query("calendar", "wakes")).records()


async def _synced(nc: Any, settings: Settings) -> bool:
    probe = new(settings, nc)
    return (await probe.history.catch_up()).mirror(CLAW).token is not None


async def _has_outcome(s: Scheduler) -> bool:
    return bool((await s.history.catch_up()).outcomes)


async def test_the_command_path_starts_the_wake_command_with_the_seed_session_and_message(
    tmp_path: Path, nats_url: str, seed_url: str, nc: Any, client: EventClient,
) -> None:
    import json
    import sys

    out = tmp_path / "argv.json"
    script = tmp_path / "wake.py"
    script.write_text(f"import json, sys\nopen({str(out)!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    settings = settings_for(tmp_path, nats_url, seed_url, dispatch_mode="command",
                            dispatch_command=f"{sys.executable} {script} {{agent_id}} {{session_id}} {{message}}")
    async with running(ProjectorHost(settings, nc)):
        await agent_is(client, QueryClient(nc, settings.projector_name), "dev", "idle")
        clock = Clock()
        s = await synced(settings, nc, clock)
        clock.to(9, 1)
        assert [d.wake for d in await s.check()] == [True]
    await eventually(lambda: out.exists() and out.read_text(), 20, "the wake command ran")
    assert json.loads(out.read_text()) == ["dev", "agent:dev:hf-wakeup", WAKE_MESSAGE]
    (sent,) = [e for e in (await _caught_up(s)).history.calendar.outcomes.values()]
    assert sent == "woken"
