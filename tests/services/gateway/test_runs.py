"""Run logs and watchdog decisions end to end: SDK chain -> RUNS -> projector -> HTTP and CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from events.core.client import EventClient
from events.runs.client import get_logger
from events.watchdog import Suspected
from services.settings import Settings
from tests.hosting import gateway_over
from tests.polling import eventually
from tests.services.cli.clirun import clean_env, script

Client = TestClient[Any, Any]


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return Settings(nats_url=nats_url, home=str(tmp_path), batch_ms=20, snapshot_interval_s=0.5)


@pytest.fixture
async def http(
    client: EventClient, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> AsyncIterator[Client]:
    async with gateway_over(settings, client, aiohttp_client, ["runs", "watchdog"]) as http:
        yield http


async def write_runs(client: EventClient) -> None:
    ok = get_logger(client, "architect", run_id="R1").set_task("T1")
    await ok.finish("running")
    await ok.set_content("all good").finish("success")
    bad = get_logger(client, "coo", run_id="R2").set_task("T2")
    await bad.set_content("Traceback: boom").finish("failed")


async def test_runs_are_listed_by_task_agent_and_status_and_shown_with_their_text(
    http: Client, client: EventClient
) -> None:
    await write_runs(client)

    async def listed(query: str) -> list[dict[str, Any]]:
        return (await (await http.get(f"/api/runs{query}")).json())["runs"]

    (r1,) = await eventually(lambda: listed("?task=T1&status=success"), timeout=10)
    assert (r1["run_id"], r1["agent_id"], r1["status"]) == ("R1", "architect", "success")
    assert [r["run_id"] for r in await eventually(lambda: listed("?agent=coo"))] == ["R2"]
    one = await (await http.get("/api/runs/R2")).json()
    assert (one["status"], one["level"], one["content"]) == ("failed", "error", "Traceback: boom")
    bad = await http.get("/api/runs?status=done")
    assert bad.status == 422 and (await bad.json())["error"]["field"] == "status"
    assert (await http.get("/api/runs/nope")).status == 404


async def test_watchdog_decisions_are_served_with_their_cause(http: Client, client: EventClient) -> None:
    await client.publish("architect", Suspected(key="k1", cause="silent 31 min", task_id="T1", silent_s=1860))

    async def decisions() -> list[dict[str, Any]]:
        return (await (await http.get("/api/watchdog?agent=architect")).json())["decisions"]

    (d,) = await eventually(decisions, timeout=10)
    assert (d["decision"], d["task_id"], d["cause"]) == ("suspected", "T1", "silent 31 min")


async def test_the_cli_lists_and_shows_runs(http: Client, client: EventClient, settings: Settings) -> None:
    await write_runs(client)
    await eventually(lambda: _count(http), timeout=10)
    env = clean_env(AGENTLEDGER_NATS_URL=settings.url, AGENTLEDGER_HOME=settings.home)
    out = await _run(env, "runs", "list", "--agent", "architect", "--json")
    assert '"run_id": "R1"' in out and "R2" not in out
    shown = await _run(env, "runs", "show", "R2")
    assert "Traceback: boom" in shown


async def _count(http: Client) -> bool:
    return len((await (await http.get("/api/runs")).json())["runs"]) == 2


async def _run(env: dict[str, str], *argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        script(), *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()
