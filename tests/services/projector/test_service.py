"""The projector host: snapshots readable from another process while it runs; clean stops."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from nats.aio.client import Client as NATS

from events.agents import AgentHeartbeat
from events.core.client import EventClient, prepare
from projections.runtime.store import file_path
from services.projector.service import ProjectorError, ProjectorHost, serve
from services.settings import Settings
from tests.hosting import running
from tests.polling import eventually

READER = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
def state():
    n = con.execute("SELECT count(*), coalesce(sum(heartbeats), 0) FROM agents").fetchone()
    seq = con.execute("SELECT seq FROM _checkpoints WHERE projection = 'agents'").fetchone()
    return {"agents": n[0], "heartbeats": int(n[1]), "seq": seq[0] if seq else 0}
print(json.dumps(state()), flush=True)
if len(sys.argv) > 2:  # keep the file open until told, then read it again
    sys.stdin.readline()
    print(json.dumps(state()), flush=True)
"""


@pytest.fixture
def settings(tmp_path: Path, nats_url: str) -> Settings:
    return Settings(home=str(tmp_path), nats_url=nats_url, batch_ms=20, snapshot_interval_s=0.2)


async def read_snapshot(path: Path) -> dict[str, int]:
    result = await anyio.run_process([sys.executable, "-c", READER, str(path)])
    return json.loads(result.stdout)


async def test_the_snapshot_is_readable_by_another_process_while_the_host_runs(
    settings: Settings, host_nc: NATS, client: EventClient
) -> None:
    snapshot = file_path(settings.projections_dir, "agents", "snapshot")
    async with running(ProjectorHost(settings, host_nc)) as host:
        await client.publish_many(prepare(f"a{i % 10}", AgentHeartbeat(status="idle")) for i in range(500))
        await eventually(lambda: host.health()["agents"]["checkpoints"].get("AGENTS") == 500)
        first = await eventually(lambda: snapshot.exists() and _seq_at_least(snapshot, 500))
        assert first == {"agents": 10, "heartbeats": 500, "seq": 500}

        async with await anyio.open_process([sys.executable, "-c", READER, str(snapshot), "hold"]) as reader:
            assert reader.stdout is not None and reader.stdin is not None
            held = json.loads(await _line(reader.stdout))
            await client.publish_many(prepare(f"b{i % 5}", AgentHeartbeat(status="busy")) for i in range(300))
            later = await eventually(lambda: _seq_at_least(snapshot, 800))
            assert later == {"agents": 15, "heartbeats": 800, "seq": 800}
            await reader.stdin.send(b"\n")
            assert json.loads(await _line(reader.stdout)) == held  # the old file, still whole
        assert await reader.wait() == 0


async def _seq_at_least(path: Path, seq: int) -> dict[str, int] | None:
    state = await read_snapshot(path)
    return state if state["seq"] >= seq else None


async def _line(stream: anyio.abc.ByteReceiveStream) -> str:
    buf = b""
    with anyio.fail_after(20):
        while not buf.endswith(b"\n"):
            buf += await stream.receive()
    return buf.decode()


async def test_serve_creates_the_streams_and_stops_cleanly_on_cancel(settings: Settings, nats_url: str) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(serve, settings, ["agents"])
        async with await EventClient.connect(nats_url) as c:
            assert (await c.js.stream_info("AGENTS")).config.name == "AGENTS"
            await c.js.publish("agents.coo.heartbeat", b'{"status":"idle"}')
        tg.cancel_scope.cancel()
    live = file_path(settings.projections_dir, "agents")
    assert live.exists() and not live.with_name(live.name + ".wal").exists()


async def test_an_unknown_projection_is_refused_before_anything_starts(settings: Settings) -> None:
    with pytest.raises(ProjectorError, match="unknown projection 'nope'"):
        await serve(settings, ["nope"])


async def test_the_module_entry_point_refuses_an_unknown_projection(tmp_path: Path) -> None:
    result = await anyio.run_process(
        [sys.executable, "-m", "services.projector.service", "--only", "nope"], cwd=tmp_path, check=False,
    )
    assert result.returncode == 2
    assert b"unknown projection 'nope'; known: agents" in result.stderr
