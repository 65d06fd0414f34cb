"""The `up` supervisor: in-process with stand-in services, in-process for real, and as a process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.abc
import pytest

from events.agents import AgentHeartbeat
from events.core.client import EventClient
from events.core.errors import Forbidden, Unavailable
from services import up
from services.runtime import credentials
from services.runtime.connection import connect_once
from services.runtime.natsd import free_port, port_free
from services.settings import Settings, load
from tests.hosting import wait_healthy
from tests.polling import eventually
from tests.services.cli.clirun import clean_env, run, script


def settings_for(home: Path, **overrides: Any) -> Settings:
    return load(env={}, home=str(home), http_port=free_port(), **overrides)


class Recorder:
    """Stand-in services (plain coroutines, no NATS or DuckDB faked) that log start and stop."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def service(self, name: str, *, fail: bool = False, returns: bool = False):  # type: ignore[no-untyped-def]
        async def serve(settings: Settings, *, task_status: anyio.abc.TaskStatus[None]) -> None:
            self.log.append(f"start {name}")
            task_status.started()
            try:
                if fail:
                    raise RuntimeError(f"{name} broke")
                if returns:
                    return
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(0.01)  # a real service awaits its cleanup too
                    self.log.append(f"stop {name}")

        return serve


async def test_services_stop_in_reverse_start_order_when_cancelled(
    nats_url: str, tmp_path: Path
) -> None:
    rec = Recorder()
    services = {"projector": rec.service("projector"), "gateway": rec.service("gateway")}
    async with anyio.create_task_group() as tg:
        running = await tg.start(
            lambda task_status: up.run(
                settings_for(tmp_path, nats_url=nats_url),
                services=services,
                task_status=task_status,
            )
        )
        assert not running.embedded and "@" not in running.nats_url
        assert set(running.streams) >= {"AGENTS", "TASKS"}
        tg.cancel_scope.cancel()
    assert rec.log == ["start projector", "start gateway", "stop gateway", "stop projector"]


async def test_a_failing_service_stops_the_others_and_propagates(
    nats_url: str, tmp_path: Path
) -> None:
    rec = Recorder()
    services = {"projector": rec.service("projector"), "gateway": rec.service("gateway", fail=True)}
    with pytest.raises(BaseExceptionGroup) as err:
        await up.run(settings_for(tmp_path, nats_url=nats_url), services=services)
    assert err.group_contains(RuntimeError, match="gateway broke")
    assert rec.log[-1] == "stop projector"


async def test_a_service_that_returns_on_its_own_is_an_error(nats_url: str, tmp_path: Path) -> None:
    rec = Recorder()
    services = {"projector": rec.service("projector", returns=True)}
    with pytest.raises(BaseExceptionGroup) as err:
        with anyio.fail_after(30):
            await up.run(settings_for(tmp_path, nats_url=nats_url), services=services)
    assert err.group_contains(up.ServiceStopped)


async def test_unreachable_external_nats_fails_before_starting_anything(tmp_path: Path) -> None:
    from events.core.errors import Unavailable

    rec = Recorder()
    with pytest.raises(Unavailable, match="cannot connect to NATS"):
        await up.run(
            settings_for(tmp_path, nats_url=f"nats://127.0.0.1:{free_port()}"),
            services={"projector": rec.service("projector")},
        )
    assert rec.log == []


async def test_up_in_process_serves_health_and_stops_the_embedded_server(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "home", nats_port=0, snapshot_interval_s=0.2)
    async with anyio.create_task_group() as tg:
        running: up.Running = await tg.start(
            lambda task_status: up.run(settings, task_status=task_status)
        )
        assert running.embedded
        port = int(running.nats_url.rsplit(":", 1)[1])
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                async with http.get(f"{running.http_url}/health") as r:
                    return r.status == 200

            await eventually(healthy, what="GET /health answers 200")
        assert running.credentials == tmp_path / "home" / "credentials"
        admin = credentials.load(tmp_path / "home", "admin")
        async with await EventClient.connect(credentials.with_user(running.nats_url, admin)) as client:
            assert await client.publish("architect", AgentHeartbeat(status="busy")) == 1
        with pytest.raises(Unavailable, match="Authorization Violation"):
            await connect_once(running.nats_url)  # no credentials: refused
        tg.cancel_scope.cancel()
    assert port_free("127.0.0.1", port)
    assert (tmp_path / "home" / "projections" / "agents.duckdb").exists()


SNAPSHOT_READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT id, status, current_task FROM agents ORDER BY id").fetchall())
"""


def nats_servers_using(store: Path) -> list[int]:
    """Pids of live processes whose command line names this store directory."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(store).encode() == arg for arg in cmdline):
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find the nats-server process")
async def test_agentledger_up_as_a_process_serves_snapshots_and_stops_on_sigint(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    nats_port, http_port = free_port(), free_port()
    env = clean_env(AGENTLEDGER_SNAPSHOT_INTERVAL_S="0.5")
    proc = await asyncio.create_subprocess_exec(
        script(),
        "up",
        "--home",
        str(home),
        "--nats-port",
        str(nats_port),
        "--http-port",
        str(http_port),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_healthy(proc, f"http://127.0.0.1:{http_port}")
        assert nats_servers_using(home / "nats"), "the embedded nats-server is running"

        added = await run("agents", "add", "architect", "--home", str(home), env=env, cwd=tmp_path)
        assert added.code == 0 and "embedded nats-server reloaded" in added.err, added.err
        creds = home / "credentials" / "agents" / "architect.json"
        assert creds.stat().st_mode & 0o777 == 0o600
        assert (home / "credentials").stat().st_mode & 0o777 == 0o700
        assert home.stat().st_mode & 0o777 == 0o700
        url = f"nats://127.0.0.1:{nats_port}"
        async with await EventClient.connect(url, credentials=creds) as client:
            await client.publish(
                "architect", AgentHeartbeat(status="busy", current_task="TC-FLOW-001", round=3)
            )
            with pytest.raises(Forbidden, match="permissions violation"):  # another agent's facts
                await client.publish("coo", AgentHeartbeat(status="busy"))
            token = json.loads(creds.read_text())["token"]
            kept = tmp_path / "revoked.json"  # the agent's copy outlives the revocation
            kept.write_bytes(creds.read_bytes())
            revoked = await run("agents", "revoke", "architect", "--home", str(home), env=env, cwd=tmp_path)
            assert revoked.code == 0 and "connections are closed" in revoked.err, revoked.err
            await eventually(lambda: not client.nc.is_connected, 10, "the server closed the revoked agent's connection")
        with pytest.raises(Unavailable):
            await EventClient.connect(url, credentials=kept, max_reconnect_attempts=0,
                                      allow_reconnect=False)
        hb = {"subject": "agents.architect.heartbeat", "data": {"status": "busy"}}
        async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{http_port}/api/events", headers={"Authorization": f"Bearer {token}"}, json=hb,
        ) as r:
            assert r.status == 401
        assert (await run("agents", "add", "architect", "--home", str(home), env=env, cwd=tmp_path)).code == 0
        async with await EventClient.connect(url, credentials=creds) as client:  # issued again: in again
            await client.publish("architect", AgentHeartbeat(status="busy", current_task="TC-FLOW-001", round=3))
        as_reader = {**env, "AGENTLEDGER_IDENTITY": "reader"}  # its answers come to _INBOX.reader only
        asked = await run("sql", "SELECT count(*) AS n FROM agents", "--json", "--home", str(home),
                          "--nats-url", url, env=as_reader, cwd=tmp_path)
        assert asked.code == 0, asked.err
        assert json.loads(asked.out)[0]["n"] >= 0

        snapshot = home / "projections" / "agents.snapshot.duckdb"

        async def snapshot_has_the_heartbeat() -> bool:
            if not snapshot.exists():
                return False
            reader = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                SNAPSHOT_READER,
                str(snapshot),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, _ = await reader.communicate()
            return reader.returncode == 0 and "('architect', 'busy', 'TC-FLOW-001')" in out.decode()

        await eventually(
            snapshot_has_the_heartbeat, timeout=60, what="a separate process reads the snapshot"
        )

        proc.send_signal(signal.SIGINT)
        with anyio.fail_after(60):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        text = out.decode()
        assert f"http://127.0.0.1:{http_port}" in text and f"nats://127.0.0.1:{nats_port}" in text
        assert f"dashboard  http://127.0.0.1:{http_port}/dashboard" in text
        assert str(home / "projections") in text
        assert str(home / "credentials") in text
        for f in (home / "projections").glob("*.duckdb"):
            assert f.stat().st_mode & 0o077 == 0, f
        assert nats_servers_using(home / "nats") == []
        assert port_free("127.0.0.1", nats_port) and port_free("127.0.0.1", http_port)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for pid in nats_servers_using(home / "nats"):
            os.kill(pid, signal.SIGKILL)


async def test_up_refuses_a_taken_nats_port_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            script(),
            "up",
            "--home",
            str(tmp_path / "home"),
            "--nats-port",
            str(port),
            "--http-port",
            str(free_port()),
            env=clean_env(),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        with anyio.fail_after(60):
            _, err = await proc.communicate()
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("agentledger: ") and f"port {port}" in lines[-1], err.decode()
    assert "Traceback" not in err.decode()


async def test_up_with_a_taken_http_port_fails_in_one_line_and_stops_nats(tmp_path: Path) -> None:
    import socket

    home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            script(),
            "up",
            "--home",
            str(home),
            "--nats-port",
            "0",
            "--http-port",
            str(port),
            env=clean_env(),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        with anyio.fail_after(60):
            _, err = await proc.communicate()
    text = err.decode()
    assert proc.returncode == 1, text
    assert (
        text.strip().splitlines()[-1].startswith("agentledger: gateway: cannot listen on")
        and "Traceback" not in text
    )
    assert nats_servers_using(home / "nats") == []


@pytest.mark.parametrize("durability", ["always", "interval"])
async def test_the_embedded_server_fsyncs_before_acking_unless_durability_is_interval(
    tmp_path: Path, durability: str
) -> None:
    settings = settings_for(tmp_path / "home", nats_port=0, durability=durability)
    config = up.server_config(settings)
    assert ("sync_interval: always" in config.read_text()) == (durability == "always")
    monitor = free_port()
    probe = config.parent / "probe.conf"  # the generated config plus a monitoring port for /varz
    probe.write_text(f"include {config.name}\nhttp_port: {monitor}\n")
    server = up.EmbeddedNats(port=free_port(), store_dir=settings.nats_store, config=probe)
    with server:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{monitor}/varz") as r:
            varz = await r.json()
    assert bool(varz["jetstream"]["config"].get("sync_always")) == (durability == "always")
