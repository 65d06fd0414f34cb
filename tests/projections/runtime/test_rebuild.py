"""Rebuild gives identical tables; replay --until seq/time gives the earlier state."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest

from events.agents import AgentHeartbeat, AgentRegistered, AgentStatusChanged, AgentUpdated
from events.core.client import EventClient, Outgoing, prepare
from projections.runtime.protocol import QueryClient
from projections.runtime.store import file_path
from services.projector.service import ProjectorError, ProjectorHost, rebuild, replay
from services.settings import Settings
from tests.hosting import running
from tests.polling import eventually

TABLES = {
    "agents": "SELECT * FROM agents ORDER BY id",
    "agent_heartbeats": "SELECT * FROM agent_heartbeats ORDER BY agent_id, minute",
    "agent_noops": "SELECT * FROM agent_noops ORDER BY seq",
    "_rejects": "SELECT * FROM _rejects ORDER BY stream, seq",
    "_checkpoints": "SELECT * FROM _checkpoints ORDER BY ALL",
}


def read(path: Path) -> dict[str, list[dict[str, Any]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.sql(sql).to_arrow_table().to_pylist() for t, sql in TABLES.items()}
    finally:
        con.close()


async def via_service(queries: QueryClient) -> dict[str, list[list[Any]]]:
    return {t: (await queries.sql("agents", sql)).rows for t, sql in TABLES.items()}


def history(n: int, offset: int = 0) -> list[Outgoing]:
    out = []
    for i in range(offset, offset + n):
        agent = f"ag{i % 7}"
        if i % 50 == 0:
            out.append(prepare(agent, AgentRegistered(agent_class="dev")))  # repeats are no-ops
        elif i % 37 == 0:
            out.append(prepare(agent, AgentUpdated(max_rounds=10 + i)))
        elif i % 11 == 0:
            out.append(prepare(agent, AgentStatusChanged(status="offline")))
        else:
            out.append(prepare(agent, AgentHeartbeat(status=("idle", "busy")[i % 2], round=i)))
    return out


async def publish_history(client: EventClient, n: int, offset: int = 0) -> int:
    seqs = await client.publish_many(history(n, offset))
    await client.js.publish("agents.ag1.heartbeat", b'{"status": 5}')  # one reject in each part
    return seqs[-1] + 1


async def test_rebuild_while_the_service_runs_gives_identical_tables_and_goes_on(
    client: EventClient, settings: Settings, host: ProjectorHost, queries: QueryClient
) -> None:
    last = await publish_history(client, 2000)
    await eventually(lambda: host.health()["agents"]["checkpoints"].get("AGENTS") == last)
    before = await via_service(queries)
    progress: list[tuple[int, int]] = []
    result = await rebuild(settings, "agents", progress=lambda d, t: progress.append((d, t)))
    assert result["swapped_by"] == "service" and result["checkpoints"] == {"AGENTS": last}
    assert progress[-1] == (last, last)
    assert await via_service(queries) == before
    assert file_path(settings.projections_dir, "agents", "prev").exists()
    assert not file_path(settings.projections_dir, "agents", "next").exists()
    await client.publish("late", AgentHeartbeat(status="idle"))
    await eventually(lambda: host.health()["agents"]["checkpoints"].get("AGENTS") == last + 1)
    assert (await queries.query("agents", "get", id="late")).rows


async def test_rebuild_without_a_service_swaps_the_files_itself(
    client: EventClient, settings: Settings, host_nc: Any
) -> None:
    async with running(ProjectorHost(settings, host_nc)) as host:
        last = await publish_history(client, 1500)
        await eventually(lambda: host.health()["agents"]["checkpoints"].get("AGENTS") == last)
    live = file_path(settings.projections_dir, "agents")
    before = read(live)
    result = await rebuild(settings, "agents")
    assert result["swapped_by"] == "rebuild"
    assert read(live) == before
    assert read(file_path(settings.projections_dir, "agents", "prev")) == before


async def test_replay_until_a_seq_or_a_time_gives_the_earlier_state(
    client: EventClient, settings: Settings, host: ProjectorHost, queries: QueryClient, tmp_path: Path
) -> None:
    middle = await publish_history(client, 700)
    await eventually(lambda: host.health()["agents"]["checkpoints"].get("AGENTS") == middle)
    then = await via_service(queries)
    between = datetime.now(UTC)
    last = await publish_history(client, 900, offset=700)
    await eventually(lambda: host.health()["agents"]["checkpoints"].get("AGENTS") == last)
    assert await via_service(queries) != then

    by_seq = await replay(settings, "agents", middle, tmp_path / "by_seq.duckdb")
    by_time = await replay(settings, "agents", between, tmp_path / "by_time.duckdb")
    assert by_seq == by_time == {"AGENTS": middle}
    for path in (tmp_path / "by_seq.duckdb", tmp_path / "by_time.duckdb"):
        con = duckdb.connect(str(path), read_only=True)
        try:
            got = {t: [list(r.values()) for r in con.sql(sql).to_arrow_table().to_pylist()]
                   for t, sql in TABLES.items()}
        finally:
            con.close()
        assert _text(got) == _text(then)


async def test_replay_refuses_to_write_over_the_projectors_files(settings: Settings, client: EventClient) -> None:
    with pytest.raises(ProjectorError):
        await replay(settings, "agents", 1, file_path(settings.projections_dir, "agents"))


def _text(tables: dict[str, list[list[Any]]]) -> Any:
    """Rows as the query protocol renders them (msgspec JSON: datetimes in ISO, bytes as text)."""
    def cell(v: Any) -> Any:
        return v.decode() if isinstance(v, bytes) else v
    return msgspec.json.decode(msgspec.json.encode(
        {t: [[cell(v) for v in row] for row in rows] for t, rows in tables.items()}
    ))
