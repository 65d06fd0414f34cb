"""The watchdog against real JetStream and the real tasks service, with thresholds in seconds."""

from __future__ import annotations

from typing import Any

import msgspec

from events.agents import AgentHeartbeat, AgentRegistered
from events.core.client import EventClient
from events.tasks.client import TaskClient
from events.watchdog import Decision
from projections.runtime.protocol import QueryClient
from services.projector.service import ProjectorHost
from services.settings import Settings
from services.watchdog import Watchdog
from services.watchdog.actions import Actions
from tests.hosting import in_task, running
from tests.polling import eventually
from tests.services.watchdog.streams import decisions, events_of


async def holding(client: EventClient, tc: TaskClient, task: str = "T1") -> None:
    await client.publish("architect", AgentRegistered(agent_class="dev"))
    await tc.create(task, title="wire the flow", by="pm")
    await tc.claim(task, agent_id="architect")
    await client.publish("architect", AgentHeartbeat(status="busy", current_task=task, round=1))


async def test_a_silent_agent_goes_through_the_ladder_once_and_its_task_is_released(
    settings: Settings, client: EventClient, tasks_service: Any
) -> None:
    nc = tasks_service
    tc = TaskClient(nc)
    await holding(client, tc)
    wd = Watchdog(settings, nc)
    async with in_task(wd.run):
        await eventually(lambda: decisions(nc), what="a first decision")
        got = await eventually(
            lambda: _if(decisions(nc), lambda d: ("timed_out", "T1") in d), what="recovery"
        )
    assert got == [("suspected", "T1"), ("timed_out", "T1")]
    history = [e.name for e in await events_of(nc, "tasks", "tasks.T1.*")]
    assert history[-2:] == ["commented", "released"]
    woken = [e for e in await events_of(nc, "agents", "agents.architect.woken")]
    assert len(woken) == 1 and woken[0].task_id == "T1"
    step = (await events_of(nc, "watchdog"))[1]
    assert (step.step, step.action, step.notify) == (1, "release", ["coo", "pm"])
    mails = [m for m in await events_of(nc, "mail") if m.name == "sent"]
    assert sorted((m.from_agent, m.to) for m in mails) == [("watchdog", "coo"), ("watchdog", "pm")]
    assert all("timed out, task T1" in m.subject and m.body == step.cause for m in mails)
    await Actions(nc, client, 5.0).apply(Decision("architect", step))  # a pass repeated after a crash
    assert len([m for m in await events_of(nc, "mail") if m.name == "sent"]) == 2  # sends none twice
    async with running(ProjectorHost(settings, client.nc, ["watchdog"])):
        queries = QueryClient(nc, settings.projector_name, timeout=5)

        async def rows() -> list[Any]:
            got = (await queries.query("watchdog", "list", agent=None, task="T1", limit=10)).records()
            return got if len(got) == 2 else []

        newest, oldest = await eventually(rows, timeout=20, what="decisions in the projection")
    assert (oldest["decision"], newest["decision"], newest["step"]) == ("suspected", "timed_out", 1)


async def test_a_restarted_watchdog_repeats_no_decision(
    settings: Settings, client: EventClient, tasks_service: Any
) -> None:
    nc = tasks_service
    await holding(client, TaskClient(nc))
    first = Watchdog(settings, nc)
    async with in_task(first.run):
        await eventually(lambda: decisions(nc), what="suspected")
    second = Watchdog(settings, nc)
    async with in_task(second.run):
        assert "watchdog:suspected:architect:T1" in " ".join(second.fold.fleet.decided)
        await eventually(lambda: _if(decisions(nc), lambda d: len(d) >= 2), what="recovery")
        assert await second.tick() == []
    assert await decisions(nc) == [("suspected", "T1"), ("timed_out", "T1")]


async def _if(value: Any, check: Any) -> Any:
    v = await value
    return v if check(v) else None


async def test_heartbeat_rounds_warn_then_pause_and_extend_rounds_resumes(
    settings: Settings, client: EventClient, tasks_service: Any
) -> None:
    nc = tasks_service
    tc = TaskClient(nc)
    await holding(client, tc)
    wd = Watchdog(msgspec.structs.replace(settings, agent_classes={"dev": {"max_rounds": 10}}), nc)

    async def beat(n: int) -> None:
        await client.publish("architect", AgentHeartbeat(status="busy", current_task="T1", round=n))

    async def has(*want: tuple[str, str | None]) -> bool:
        got = await decisions(nc)
        return all(w in got for w in want)

    async with in_task(wd.fold.run):
        for n, want in ((8, ("round_warned", "T1")), (10, ("round_paused", "T1"))):
            await beat(n)
            await eventually(lambda w=want: _tick_until(wd, lambda: has(w)), what=str(want))
        await eventually(lambda: wd.fold.fleet.tasks["T1"].status == "blocked", what="paused")
        reply = await tc.command("extend_rounds", {"task_id": "T1", "max_rounds": 20, "by": "coo"})
        assert [e["event"] for e in reply["events"]] == ["rounds_extended", "unblocked"]
        await beat(16)
        await eventually(lambda: _tick_until(wd, lambda: _count(nc, "round_warned", 2)), what="warn at 16/20")
    kinds = [e for e in await events_of(nc, "watchdog") if e.name.startswith("round_")]
    assert [(e.name, e.round, e.max_rounds) for e in kinds] == [
        ("round_warned", 8, 10), ("round_paused", 10, 10), ("round_warned", 16, 20)
    ]


async def _tick_until(wd: Watchdog, check: Any) -> bool:
    await wd.tick()
    return bool(await check())


async def _count(nc: Any, name: str, n: int) -> bool:
    return [d[0] for d in await decisions(nc)].count(name) >= n


async def test_scheduled_heartbeats_wake_an_idle_agent_over_nats_and_skip_a_busy_one(
    settings: Settings, client: EventClient, tasks_service: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    nc = tasks_service
    await client.publish("architect", AgentRegistered(agent_class="dev"))
    await client.publish("architect", AgentHeartbeat(status="idle"))
    await client.publish("lawyer", AgentRegistered(agent_class="business"))
    await client.publish("lawyer", AgentHeartbeat(status="busy"))
    later = datetime.now(UTC) + timedelta(minutes=16)  # past the next quarter hour
    wd = Watchdog(msgspec.structs.replace(settings, heartbeat_wakes=True), nc, clock=lambda: later)
    wakes = await nc.subscribe("wake.>")
    async with in_task(wd.fold.run):
        await eventually(lambda: len(wd.fold.fleet.agents) == 2 and wd.fold.fleet.agents["lawyer"].status)
        first = await wd.tick()
        assert await wd.tick() == []
    assert sorted((d.agent_id, d.event.outcome, d.event.cause if d.event.outcome == "skipped" else "")
                  for d in first) == [("architect", "woken", ""), ("lawyer", "skipped", "busy in a conversation")]
    msg = await wakes.next_msg(timeout=5)
    assert msg.subject == "wake.architect" and b"scheduled heartbeat" in msg.data
    woken = await events_of(nc, "agents", "agents.*.woken")
    assert [w.reason.startswith("scheduled heartbeat") for w in woken] == [True]


async def test_a_stuck_run_is_killed_its_task_released_and_a_fix_task_created(
    settings: Settings, client: EventClient, tasks_service: Any
) -> None:
    from events.runs import RunStarted

    nc = tasks_service
    tc = TaskClient(nc)
    await holding(client, tc)
    await client.publish("R1", RunStarted(agent_id="architect", task_id="T1", log_type="attempt", pid=4242))
    kills = await nc.subscribe("kill.architect")
    wd = Watchdog(settings, nc)
    async with in_task(wd.run):
        await eventually(lambda: _if(decisions(nc), lambda d: ("stuck", "T1") in d), what="stuck")
        msg = await kills.next_msg(timeout=10)
    assert b'"run_id":"R1"' in msg.data
    assert await decisions(nc) == [("stuck", "T1")]  # the stuck rule, not the silence ladder
    history = [e.name for e in await events_of(nc, "tasks", "tasks.T1.*")]
    assert history[-1] == "released"
    (fix,) = await events_of(nc, "tasks", "tasks.FIX-T1-STUCK.*")
    assert (fix.parent_id, fix.type, fix.priority) == ("T1", "fix", "P0")


async def test_root_cause_requested_wakes_the_analyst_with_the_tasks_last_runs(
    settings: Settings, client: EventClient, tasks_service: Any
) -> None:
    from events.runs.client import get_logger
    from events.tasks import TaskRootCauseRequested

    nc = tasks_service
    await TaskClient(nc).create("T1", title="flaky", by="pm")
    for n in range(3):
        await get_logger(client, "architect", run_id=f"R{n}").set_task("T1").finish("failed")
    await client.publish("T1", TaskRootCauseRequested(failures=3, last_error="ImportError"))
    wakes = await nc.subscribe("wake.analyst")
    wd = Watchdog(msgspec.structs.replace(settings, watchdog_analyst="analyst"), nc)
    async with in_task(wd.run):
        msg = await wakes.next_msg(timeout=20)

        async def recorded() -> list[Any]:  # the wake goes first, its record right after it
            return [e for e in await events_of(nc, "watchdog") if e.name == "analyst_woken"]

        (woken,) = await eventually(recorded, 20, "analyst_woken recorded")
    assert b"root-cause analysis of T1" in msg.data and b"R0, R1, R2" in msg.data
    assert (woken.analyst, woken.run_ids, woken.failures) == ("analyst", ["R0", "R1", "R2"], 3)
