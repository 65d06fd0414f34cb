"""A local 3-node JetStream cluster (`agentledger cluster up`): the stream leader SIGKILLed under
publish load loses no acked event, publishing resumes, the node comes back."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

import aiohttp
import anyio
import duckdb
import msgspec
import nats

from events.agents import AgentHeartbeat
from events.core.client import EventClient
from events.core.errors import Conflict
from events.tasks.client import TaskClient
from services import up
from services.projector import service as projector
from services.runtime import cluster, credentials
from services.runtime.nats_auth import authorization_block
from services.runtime.natsd import find_binary, free_port
from services.settings import load
from tests.polling import eventually
from tests.services.cli.clirun import clean_env, script


async def publish_acked(client: EventClient, n: int, *, agents: int) -> int:
    """Heartbeat `n` of agent `a<n % agents>`, retried (same msg id) until acked; its seq."""
    seq = 0

    async def once() -> bool:
        nonlocal seq
        try:
            seq = await client.publish(f"a{n % agents}", AgentHeartbeat(status="busy", round=n), msg_id=f"hb-{n}")
        except Exception:  # noqa: BLE001 - no leader for a moment: retry
            return False
        return True

    await eventually(once, 30, f"heartbeat {n} acked")
    return seq


def test_every_node_routes_to_the_others_and_fsyncs_before_acking(tmp_path: Path) -> None:
    settings = load(env={}, home=str(tmp_path / "home"), nats_port=0)
    servers = cluster.node_configs(settings, 3)
    texts = [s.config.read_text() for s in servers]  # type: ignore[union-attr]
    for i, text in enumerate(texts):
        assert f"server_name: n{i + 1}" in text and "sync_interval: always" in text
        assert text.count("nats://127.0.0.1:") == 2 and "authorization" in text
    assert len({s.port for s in servers}) == 3


async def test_killing_the_stream_leader_under_load_loses_no_acked_event(tmp_path: Path) -> None:
    settings = load(env={}, home=str(tmp_path / "home"), nats_port=0, request_timeout_s=2.0)
    acked: dict[int, int] = {}  # event number -> stream seq
    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            running: cluster.Cluster = await tg.start(cluster.run, settings, 3)
            admin = running.settings.url_as("admin")
            async with await EventClient.connect(admin) as client:

                for n in range(200):
                    acked[n] = await publish_acked(client, n, agents=7)
                nc = await nats.connect(admin.split(","))
                info = await nc.jetstream().stream_info("AGENTS")
                assert info.config.num_replicas == 3
                leader = info.cluster.leader  # type: ignore[union-attr]
                [victim] = [s for s in running.nodes if s.store_dir.name == leader]
                pid = victim.proc.pid  # type: ignore[union-attr]
                os.kill(pid, signal.SIGKILL)
                for n in range(200, 400):
                    acked[n] = await publish_acked(client, n, agents=7)

                async def all_there() -> bool:
                    info = await nc.jetstream().stream_info("AGENTS")
                    replicas = info.cluster.replicas or []  # type: ignore[union-attr]
                    return info.state.messages == 400 and len(replicas) == 2 and all(r.current for r in replicas)

                await eventually(all_there, 90, "400 events on a leader and two current replicas")
                assert victim.proc is not None and victim.proc.pid != pid  # restarted by the supervisor
                assert len(set(acked.values())) == 400 and max(acked.values()) == 400
                await nc.close()
            tg.cancel_scope.cancel()
    for server in running.nodes:
        assert server.proc is None


def test_the_shipped_cluster_configs_are_valid_and_fsync_before_acking(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[3] / "ops" / "cluster"
    creds = credentials.ensure(tmp_path / "home")
    (tmp_path / "auth.conf").write_text(authorization_block(creds.values()))
    for i in (1, 2, 3):
        text = (shipped / f"n{i}.conf").read_text()
        assert "sync_interval: always" in text and f"server_name: n{i}" in text
        (tmp_path / f"n{i}.conf").write_text(text)
        checked = subprocess.run([str(find_binary()), "-t", "-c", str(tmp_path / f"n{i}.conf")],
                                 check=False, capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr + checked.stdout


async def test_agentledger_cluster_up_prints_the_urls_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        script(), "cluster", "up", "--nodes", "3", "--home", str(tmp_path / "home"), "--nats-port", "0",
        env=clean_env(), cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        with anyio.fail_after(90):
            lines = [(await proc.stdout.readline()).decode() for _ in range(6)]  # type: ignore[union-attr]
        assert lines[0].startswith("agentledger cluster of 3 is up (streams replicas=3)"), lines
        assert "AGENTLEDGER_NATS_URL=nats://127.0.0.1:" in lines[5] and "@" not in lines[5]
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            await proc.wait()
        assert proc.returncode == 0
        for i in (1, 2, 3):
            pid_file = tmp_path / "home" / "cluster" / f"n{i}" / "nats-server.pid"
            assert not pid_file.exists() or not alive(int(pid_file.read_text()))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_services_continue_without_a_restart_when_a_stream_leader_dies(tmp_path: Path) -> None:
    """The projector, the tasks service and the gateway (in one `up`, against the cluster) keep
    serving through the death of the AGENTS and TASKS leaders: new events are projected, commands
    answered, and none of them was restarted (they run as tasks of this process)."""
    home = tmp_path / "home"
    base = load(env={}, home=str(home), nats_port=0, http_port=free_port(), request_timeout_s=2.0,
                snapshot_interval_s=1.0)
    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            running: cluster.Cluster = await tg.start(cluster.run, base, 3)
            settings = running.settings
            await tg.start(lambda task_status: up.run(settings, task_status=task_status))
            admin = settings.url_as("admin")
            nc = await nats.connect(admin.split(","))
            leaders = {(await nc.jetstream().stream_info(s)).cluster.leader for s in ("AGENTS", "TASKS")}  # type: ignore[union-attr]
            victims = [s for s in running.nodes if s.store_dir.name in leaders][:1]
            os.kill(victims[0].proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
            tasks = TaskClient(nc, timeout=5.0)

            async def command_answered() -> bool:
                try:
                    await tasks.create("T-AFTER", title="after the leader died")
                except Conflict:
                    return True  # an earlier try was applied though its answer timed out
                except Exception:  # noqa: BLE001 - a new leader is being elected
                    return False
                return True

            await eventually(command_answered, 60, "the tasks service answers a command")
            async with await EventClient.connect(admin) as client:
                await eventually(lambda: _publish(client), 60, "a heartbeat is acked")
            async with aiohttp.ClientSession() as http:

                async def projected() -> bool:
                    async with http.get(f"{settings.http_url}/api/agents") as r, \
                            http.get(f"{settings.http_url}/api/tasks/T-AFTER") as t:
                        return r.status == 200 and "after-leader" in await r.text() and t.status == 200

                await eventually(projected, 90, "the projector applies both, the gateway serves them")
            await nc.close()
            tg.cancel_scope.cancel()


async def _publish(client: EventClient) -> bool:
    try:
        await client.publish("after-leader", AgentHeartbeat(status="busy"), msg_id="hb-after-leader")
    except Exception:  # noqa: BLE001 - a new leader is being elected
        return False
    return True


SNAPSHOT_ROWS = "SELECT id, status, round, heartbeats FROM agents ORDER BY id"


def snapshot_rows(home: Path) -> list[tuple[object, ...]] | None:
    path = home / "projections" / "agents.snapshot.duckdb"
    if not path.exists():
        return None
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:  # being renamed into place
        return None
    try:
        return con.execute(SNAPSHOT_ROWS).fetchall()
    finally:
        con.close()


async def test_two_projectors_on_two_homes_build_identical_models_through_a_leader_kill(tmp_path: Path) -> None:
    """Two hosts' projectors (two homes, the same credentials) read the replicated AGENTS stream,
    a node leading it dies half-way: each resumes from its checkpoint and both read models equal
    what was published, every heartbeat counted once."""
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    base = load(env={}, home=str(home_a), nats_port=0, request_timeout_s=2.0, snapshot_interval_s=0.3)
    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            running: cluster.Cluster = await tg.start(cluster.run, base, 3)
            shutil.copytree(home_a / "credentials", home_b / "credentials")
            a = running.settings
            b = msgspec.structs.replace(a, home=str(home_b))
            async with anyio.create_task_group() as hosts:  # stopped before the cluster
                for s in (a, b):
                    await hosts.start(projector.serve, s)
                admin = a.url_as("admin")
                async with await EventClient.connect(admin) as client:
                    for n in range(150):
                        await publish_acked(client, n, agents=5)
                    nc = await nats.connect(admin.split(","))
                    leader = (await nc.jetstream().stream_info("AGENTS")).cluster.leader  # type: ignore[union-attr]
                    await nc.close()
                    [victim] = [s for s in running.nodes if s.store_dir.name == leader]
                    os.kill(victim.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
                    for n in range(150, 300):
                        await publish_acked(client, n, agents=5)
                expected = [(f"a{i}", "busy", 295 + i, 60) for i in range(5)]
                for home in (home_a, home_b):
                    await eventually(lambda home=home: snapshot_rows(home) == expected, 90,
                                     f"the read model of {home.name} has every heartbeat once")
                hosts.cancel_scope.cancel()
            tg.cancel_scope.cancel()
