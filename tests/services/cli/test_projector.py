"""CLI commands that go through the projector: `serve`, `sql`, `rejects`, `rebuild`, `replay`.

The projector and the gateway run as `agentledger serve ...` processes on the test's own NATS
account; every command is the console script in a separate process.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import duckdb
import pytest

from events.agents import AgentHeartbeat
from events.core.client import EventClient, prepare
from services.runtime.natsd import free_port
from tests.polling import eventually
from tests.services.cli.clirun import Result, clean_env, run, script


class Env:
    def __init__(self, nats_url: str, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.home = tmp_path / "home"
        self.vars = clean_env(
            AGENTLEDGER_NATS_URL=nats_url,
            AGENTLEDGER_HOME=str(self.home),
            AGENTLEDGER_SNAPSHOT_INTERVAL_S="0.5",
        )

    async def cli(self, *args: str) -> Result:
        return await run(*args, env=self.vars, cwd=self.cwd)

    async def start(self, *args: str, **extra: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            script(),
            *args,
            env={**self.vars, **extra},
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return proc


async def stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> tuple[int, str]:
    if proc.returncode is None:
        proc.send_signal(sig)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, err.decode()


@pytest.fixture
async def env(nats_url: str, tmp_path: Path, client: EventClient) -> AsyncIterator[Env]:
    yield Env(nats_url, tmp_path)


@pytest.fixture
async def projector(env: Env) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await env.start("serve", "projector")

    async def answers() -> bool:
        if proc.returncode is not None:
            raise AssertionError(f"serve projector exited: {(await proc.stderr.read()).decode()}")  # type: ignore[union-attr]
        return (await env.cli("sql", "SELECT 1 AS one")).code == 0

    await eventually(answers, what="the projector answers SQL")
    yield proc
    code, err = await stop(proc)
    assert code == 0, err


async def agent_rows(env: Env, want: int) -> list[dict[str, object]]:
    async def check() -> list[dict[str, object]] | None:
        r = await env.cli("sql", "--json", "SELECT id, status, heartbeats FROM agents ORDER BY id")
        assert r.code == 0, r.err
        rows = json.loads(r.out)
        return rows if sum(int(x["heartbeats"]) for x in rows) >= want else None

    return await eventually(check, what=f"{want} heartbeats in the agents projection")  # type: ignore[no-any-return]


async def test_sql_through_a_served_projector_prints_a_table_and_json(
    env: Env, client: EventClient, projector: asyncio.subprocess.Process
) -> None:
    await client.publish_many(
        [
            prepare("architect", AgentHeartbeat(status="busy")),
            prepare("coo", AgentHeartbeat(status="idle")),
        ]
    )
    rows = await agent_rows(env, 2)
    assert [(r["id"], r["status"]) for r in rows] == [("architect", "busy"), ("coo", "idle")]
    table = await env.cli("sql", "SELECT id, status FROM agents ORDER BY id")
    assert table.code == 0 and "architect" in table.out and "busy" in table.out and "┃" in table.out


async def test_sql_that_is_not_a_select_is_refused_in_one_line(
    env: Env, projector: asyncio.subprocess.Process
) -> None:
    r = await env.cli("sql", "DELETE FROM agents")
    assert r.code == 2  # wrong input, as the README documents
    assert (
        r.err.strip().startswith("agentledger: projector:") and len(r.err.strip().splitlines()) == 1
    )


async def test_rejects_lists_a_raw_payload_that_breaks_the_schema(
    env: Env, client: EventClient, projector: asyncio.subprocess.Process
) -> None:
    await client.js.publish("agents.rogue.heartbeat", b'{"status": 5}')
    await client.publish("architect", AgentHeartbeat(status="idle"))
    await agent_rows(env, 1)

    async def listed() -> list[dict[str, object]]:
        r = await env.cli("rejects", "--json")
        assert r.code == 0, r.err
        return json.loads(r.out)  # type: ignore[no-any-return]

    rows = await eventually(listed, what="the reject is listed")
    assert rows[0]["seq"] == 1 and "$.status" in str(rows[0]["error"])
    table = await env.cli("rejects")
    assert "agents.rogue.heartbeat" in table.out
    await client.js.publish("agents.rogue.heartbeat", b'{"status": 6}')
    page = await env.cli("rejects", "--json", "--limit", "1", "--projection", "agents", "--after", "AGENTS:3")
    assert [r["seq"] for r in json.loads(page.out)] == [3] and "--offset 1" in page.err
    page = await env.cli("rejects", "--json", "--limit", "1", "--offset", "1")
    assert [r["seq"] for r in json.loads(page.out)] == [1]


async def test_rebuild_while_the_projector_serves_keeps_every_row(
    env: Env, client: EventClient, projector: asyncio.subprocess.Process
) -> None:
    await client.publish_many(
        [prepare(f"a{i % 5}", AgentHeartbeat(status="busy")) for i in range(500)]
    )
    await agent_rows(env, 500)
    r = await env.cli("rebuild", "agents")
    assert r.code == 0, r.err
    assert "rebuilt agents" in r.out and "AGENTS=500" in r.out
    assert sum(int(x["heartbeats"]) for x in await agent_rows(env, 500)) == 500


async def test_replay_until_a_sequence_writes_the_fleet_as_it_was(
    env: Env, client: EventClient, tmp_path: Path
) -> None:
    await client.publish("architect", AgentHeartbeat(status="busy"))
    await client.publish("architect", AgentHeartbeat(status="idle"))
    out = tmp_path / "then.duckdb"
    r = await env.cli("replay", "--until", "1", "--out", str(out))
    assert r.code == 0, r.err
    assert "AGENTS=1" in r.out
    con = duckdb.connect(str(out), read_only=True)
    try:
        assert con.execute("SELECT status FROM agents WHERE id = 'architect'").fetchall() == [
            ("busy",)
        ]
    finally:
        con.close()
    again = await env.cli("replay", "--until", "2026-01-01T00:00:00Z", "--out", str(out))
    assert again.code == 2 and "--force" in again.err


async def test_unknown_projection_is_named(env: Env) -> None:
    r = await env.cli("rebuild", "nosuch")
    assert r.code == 2 and "nosuch" in r.err and "agents" in r.err and "Traceback" not in r.err


async def test_serve_gateway_and_projector_answer_health_and_stop_on_sigterm(env: Env) -> None:
    port = free_port()
    projector = await env.start("serve", "projector", "--only", "agents")
    gateway = await env.start("serve", "gateway", AGENTLEDGER_HTTP_PORT=str(port))
    try:
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                for p in (projector, gateway):
                    if p.returncode is not None:
                        raise AssertionError((await p.stderr.read()).decode())  # type: ignore[union-attr]
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(healthy, what="the gateway reports healthy")
    finally:
        g_code, g_err = await stop(gateway)
        p_code, p_err = await stop(projector, signal.SIGINT)
    assert g_code == 0, g_err
    assert p_code == 0, p_err
