"""SIGKILL the projector service mid catch-up: after a restart nothing is lost or applied twice."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import duckdb

from events.agents import AgentHeartbeat
from events.core.client import EventClient, prepare
from projections.runtime.protocol import QueryClient, QueryError
from projections.runtime.store import file_path
from services.projector.service import replay
from services.settings import Settings
from tests.polling import eventually
from tests.services.cli.clirun import script

EVENTS = 200_000
AGENTS = 200
ROOT = Path(__file__).resolve().parents[3]


def start(nats_url: str, home: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLEDGER_")}
    env.update(AGENTLEDGER_NATS_URL=nats_url, AGENTLEDGER_HOME=str(home), PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [script(), "serve", "projector", "--only", "agents"],
        env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=open(home / "projector.log", "ab"),
    )


async def agents_health(queries: QueryClient) -> dict[str, Any] | None:
    try:
        return (await queries.health(timeout=2.0))["agents"]
    except QueryError:
        return None


def read(path: Path) -> dict[str, list[dict[str, Any]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            "agents": con.sql("SELECT * FROM agents ORDER BY id").to_arrow_table().to_pylist(),
            "agent_heartbeats": con.sql(
                "SELECT * FROM agent_heartbeats ORDER BY agent_id, minute").to_arrow_table().to_pylist(),
        }
    finally:
        con.close()


async def test_sigkill_mid_catch_up_then_restart_matches_a_clean_replay(
    client: EventClient, nats_url: str, tmp_path: Path
) -> None:
    statuses = ("idle", "busy", "offline")
    chunk = 20_000
    for base in range(0, EVENTS, chunk):
        await client.publish_many(
            prepare(f"agent-{i % AGENTS}", AgentHeartbeat(status=statuses[i % 3], round=i % 50))
            for i in range(base, base + chunk)
        )
    queries = QueryClient(client.nc, "projector")

    proc = start(nats_url, tmp_path)
    try:
        partway = await eventually(
            lambda: _between(agents_health(queries), 1, EVENTS - 1), timeout=60, what="checkpoint partway"
        )
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 0 < partway < EVENTS

    proc = start(nats_url, tmp_path)
    try:
        health = await eventually(
            lambda: _caught_up(agents_health(queries)), timeout=120, what="caught up after restart"
        )
        assert health["healthy"] and health["rejects"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()

    settings = Settings(home=str(tmp_path), nats_url=nats_url)
    clean = tmp_path / "clean.duckdb"
    assert await replay(settings, "agents", EVENTS, clean) == {"AGENTS": EVENTS}
    live = read(file_path(settings.projections_dir, "agents"))
    assert live == read(clean)
    assert sum(r["heartbeats"] for r in live["agents"]) == EVENTS
    assert sum(r["heartbeats"] for r in live["agent_heartbeats"]) == EVENTS


async def _between(health: Any, low: int, high: int) -> int | None:
    h = await health
    seq = (h or {}).get("checkpoints", {}).get("AGENTS", 0)
    return seq if low <= seq <= high else None


async def _caught_up(health: Any) -> dict[str, Any] | None:
    h = await health
    if h and h["caught_up"] and h["checkpoints"].get("AGENTS") == EVENTS:
        return h
    return None
