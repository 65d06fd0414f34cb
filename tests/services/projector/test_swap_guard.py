"""A swap adopts only the projector's own rebuild, never a file from elsewhere or from the future."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from nats.aio.client import Client as NATS

from events.agents import AgentHeartbeat
from events.core.client import EventClient
from projections.runtime.protocol import QueryClient, QueryError
from projections.runtime.store import file_path
from services.projector.service import ProjectorHost
from services.settings import Settings
from tests.hosting import running
from tests.polling import eventually


@pytest.fixture
def settings(tmp_path: Path, nats_url: str) -> Settings:
    return Settings(home=str(tmp_path / "home"), nats_url=nats_url, batch_ms=20, snapshot_interval_s=0.2)


async def test_a_file_outside_the_projections_folder_is_refused(
    settings: Settings, host_nc: NATS, client: EventClient, tmp_path: Path
) -> None:
    await client.publish("architect", AgentHeartbeat(status="busy"))
    queries = QueryClient(client.nc, settings.projector_name)
    async with running(ProjectorHost(settings, host_nc, ["agents"])):
        live = file_path(settings.projections_dir, "agents")
        await eventually(lambda: file_path(settings.projections_dir, "agents", "snapshot").exists())
        forged = tmp_path / "forged.duckdb"
        shutil.copy(file_path(settings.projections_dir, "agents", "snapshot"), forged)
        with pytest.raises(QueryError, match="only .*agents.next.duckdb") as err:
            await queries.swap("agents", str(forged))
        assert err.value.code == "forbidden"
        link = file_path(settings.projections_dir, "agents", "next")
        link.symlink_to(forged)
        with pytest.raises(QueryError, match="refusing to swap"):
            await queries.swap("agents", str(link))
        assert live.exists()


async def test_a_rebuild_claiming_events_the_streams_never_had_is_refused(
    settings: Settings, host_nc: NATS, client: EventClient
) -> None:
    await client.publish("architect", AgentHeartbeat(status="busy"))
    queries = QueryClient(client.nc, settings.projector_name)
    async with running(ProjectorHost(settings, host_nc, ["agents"])):
        snapshot = file_path(settings.projections_dir, "agents", "snapshot")
        await eventually(lambda: snapshot.exists())
        built = file_path(settings.projections_dir, "agents", "next")
        shutil.copy(snapshot, built)
        con = duckdb.connect(str(built))
        con.execute("INSERT OR REPLACE INTO _checkpoints (projection, stream, seq) VALUES ('agents', 'AGENTS', 999999)")
        con.close()
        with pytest.raises(QueryError, match="beyond the stream's last sequence 1"):
            await queries.swap("agents", str(built))


async def test_swap_is_an_admin_op_refused_on_the_readers_subject(
    settings: Settings, host_nc: NATS, client: EventClient
) -> None:
    async with running(ProjectorHost(settings, host_nc, ["agents"])):
        reply = await client.nc.request(
            f"q.{settings.projector_name}", b'{"op":"swap","projection":"agents","path":"/x"}', timeout=5
        )
        assert b'"forbidden"' in reply.data and b"admin op" in reply.data
