"""`/metrics` carries the seed exporter's agent health series, computed from the projections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from events.agents import AgentHeartbeat, AgentRegistered
from events.core.client import EventClient
from events.runs.client import get_logger
from events.tasks import (
    TaskAttemptFinished,
    TaskAttemptStarted,
    TaskClaimed,
    TaskCreated,
)
from events.watchdog import Suspected
from services.settings import Settings
from tests.hosting import gateway_over
from tests.polling import eventually

Client = TestClient[Any, Any]


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return Settings(nats_url=nats_url, home=str(tmp_path), batch_ms=20,
                    agent_classes={"business": {"stall_warning_s": 1}})


@pytest.fixture
async def http(
    client: EventClient, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> AsyncIterator[Client]:
    names = ["agents", "tasks", "runs", "watchdog"]
    async with gateway_over(settings, client, aiohttp_client, names) as http:
        yield http


async def samples(http: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = await (await http.get("/metrics")).text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


async def scripted_fleet(client: EventClient) -> None:
    await client.publish("architect", AgentRegistered(agent_class="dev", display_name="梁思筑"))
    await client.publish("lawyer", AgentRegistered(agent_class="business", display_name="苏慎"))
    for tid, type_ in (("F1", "fix"), ("R1", "regular"), ("R2", "regular"), ("T1", "regular")):
        await client.publish(tid, TaskCreated(title=tid, type=type_))
    await client.publish("T1", TaskClaimed(agent_id="architect"))
    for n in (1, 2):
        await client.publish("T1", TaskAttemptStarted(agent_id="architect", attempt=n))
        await client.publish("T1", TaskAttemptFinished(agent_id="architect", outcome="api_error", attempt=n))
    for run, ms in (("RA", 1000), ("RB", 3000)):
        log = get_logger(client, "architect", run_id=run, clock=iter([0.0, ms / 1000]).__next__)
        await log.set_task("T1").finish("running")
        await log.finish("success")
    await client.publish("architect", AgentHeartbeat(status="busy", current_task="T1", round=2))
    await client.publish("lawyer", AgentHeartbeat(status="idle"))
    await client.publish("architect", Suspected(key="k", cause="c", task_id="T1", silent_s=1))


async def test_the_seed_metric_names_carry_the_fleets_values(http: Client, client: EventClient) -> None:
    await scripted_fleet(client)
    arch = (("agent_label", "梁思筑"), ("agent_name", "architect"))
    law = (("agent_label", "苏慎"), ("agent_name", "lawyer"))

    async def heard(agent: str) -> bool:
        r = await http.get(f"/api/agents/{agent}")
        return r.status == 200 and (await r.json())["heartbeats"] == 1

    await eventually(lambda: heard("architect"), timeout=20)
    await eventually(lambda: heard("lawyer"), timeout=20)

    async def settled() -> Any:
        got = await samples(http)
        ready = (got.get(("agent_response_time_seconds", arch)) == 2.0
                 and got.get(("agent_heartbeat_status", law)) == 0.0
                 and got.get(("agentledger_watchdog_decisions_total", (("decision", "suspected"),))) == 1.0)
        return got if ready else None

    got = await eventually(settled, timeout=20, what="projections caught up, lawyer stale")
    assert got[("agent_heartbeat_status", arch)] == 1.0
    assert got[("agent_429_error_rate", (("agent_name", "architect"),))] == 2.0
    assert got[("agent_429_error_rate", (("agent_name", "lawyer"),))] == 0.0
    assert 0.0 <= got[("agent_task_stagnation_seconds", arch)] < 600
    assert got[("agent_task_stagnation_seconds", law)] == 0.0
    assert got[("agent_response_time_seconds", law)] == 0.0
    pending = {dict(k[1])["type"]: v for k, v in got.items() if k[0] == "agent_workboard_pending"}
    assert pending == {"fix": 1.0, "regular": 2.0, "creative": 0.0}
    assert got[("agentledger_watchdog_decisions_total", (("decision", "timed_out"),))] == 0.0
