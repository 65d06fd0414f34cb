"""The watchdog against real JetStream and the real tasks service, with thresholds in seconds."""

from __future__ import annotations

from typing import Any

from events.agents import AgentHeartbeat, AgentRegistered
from events.core.client import EventClient
from events.tasks.client import TaskClient
from services.settings import Settings
from services.watchdog import Watchdog
from tests.hosting import in_task
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
