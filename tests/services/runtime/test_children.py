"""`agentledger up` as the production topology: one `agentledger serve` process per service,
SIGKILLed children restarted, the system healthy again, `agentledger status` telling it."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from events.agents import AgentHeartbeat
from events.core.client import EventClient
from services.runtime import credentials
from services.runtime.children import child_env, describe_exit
from services.runtime.natsd import free_port, port_free
from services.settings import load
from tests.polling import eventually
from tests.services.cli.clirun import clean_env, reap, run, start_up

SERVICES = ["projector", "tasks", "gateway"]


def test_a_child_gets_every_setting_of_the_supervisor_and_no_settings_file() -> None:
    settings = load(env={}, home="/tmp/h", http_port=9999, gateway_keys="k1", snapshot_group_read=True)
    env = child_env(settings, base={"PATH": "/bin", "AGENTLEDGER_HTTP_PORT": "1"})
    assert env["PATH"] == "/bin" and env["AGENTLEDGER_HTTP_PORT"] == "9999"
    assert env["AGENTLEDGER_CONFIG"] == os.devnull
    assert env["AGENTLEDGER_GATEWAY_KEYS"].startswith("sha256:")  # the hash, never the key
    assert env["AGENTLEDGER_SNAPSHOT_GROUP_READ"] == "true"
    assert "AGENTLEDGER_NATS_URL" not in env  # unset stays unset
    assert load(env=env) == settings


def test_an_exit_is_told_by_signal_or_code() -> None:
    assert describe_exit(-9) == "killed by SIGKILL" and describe_exit(3) == "exited with code 3"


async def status_of(home: Path, env: dict[str, str], cwd: Path) -> dict[str, dict[str, Any]]:
    done = await run("status", "--json", "--home", str(home), env=env, cwd=cwd)
    if not done.out:  # not up yet: one line on stderr, exit 1
        assert done.code == 1 and "nothing runs on home" in done.err, done.err
        return {}
    return {row["service"]: row | {"code": done.code} for row in json.loads(done.out)}


@pytest.mark.skipif(sys.platform != "linux", reason="signals child processes by pid")
async def test_sigkill_of_any_child_gets_it_restarted_and_the_system_healthy_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    nats_port, http_port = free_port(), free_port()
    env = clean_env()
    log_file = tmp_path / "up.log"
    proc = await start_up(home, tmp_path, env, "--nats-port", str(nats_port), "--http-port", str(http_port))
    pids: list[int] = []
    try:
        async def all_ok() -> dict[str, dict[str, Any]] | bool:
            assert proc.returncode is None, log_file.read_text()
            rows = await status_of(home, env, tmp_path)
            return rows if rows and all(r["health"] == "ok" for r in rows.values()) else False

        rows = await eventually(all_ok, 90, "agentledger status: every service ok")
        assert list(rows) == ["up", "nats-server", *SERVICES, "watchdog", "notifier"]
        assert rows["up"]["code"] == 0
        pids = [rows[n]["pid"] for n in SERVICES]
        assert len(set(pids)) == 3 and proc.pid not in pids  # one process per service

        for name in SERVICES:
            old = rows[name]["pid"]
            os.kill(old, signal.SIGKILL)

            async def restarted(name: str = name, old: int = old) -> dict[str, dict[str, Any]] | bool:
                rows = await status_of(home, env, tmp_path)
                row = rows.get(name, {})
                healthy = all(r["health"] == "ok" for r in rows.values())
                return rows if row.get("restarts") == 1 and row.get("pid") != old and healthy else False

            rows = await eventually(restarted, 60, f"{name} restarted and everything ok again")
            pids.append(rows[name]["pid"])

        admin = credentials.with_user(f"nats://127.0.0.1:{nats_port}", credentials.load(home, "admin"))
        async with await EventClient.connect(admin) as client:
            await client.publish("after-kills", AgentHeartbeat(status="busy"))
        async with aiohttp.ClientSession() as http:

            async def projected() -> bool:
                async with http.get(f"http://127.0.0.1:{http_port}/api/agents") as r:
                    return r.status == 200 and "after-kills" in await r.text()

            await eventually(projected, 60, "the restarted projector and gateway serve new events")
        created = await run("tasks", "create", "T1", "--title", "after the kills", "--home", str(home),
                            "--nats-url", f"nats://127.0.0.1:{nats_port}",
                            env=env, cwd=tmp_path)
        assert created.code == 0, created.err  # the restarted tasks service answers

        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            out, _ = await proc.communicate()
        assert proc.returncode == 0, log_file.read_text()
        assert out.decode().startswith("agentledger is up")
        text = log_file.read_text()
        assert "projector (pid" in text and "killed by SIGKILL; restarting it" in text
        assert any(line.startswith("gateway    | ") for line in text.splitlines())
        stopped = [line.split(" stopped")[0].rsplit(" ", 1)[-1] for line in text.splitlines()
                   if line.rstrip().endswith(" stopped") and "children" in line]
        assert stopped == ["notifier", "watchdog", "gateway", "tasks", "projector"]  # start order, reversed
        assert port_free("127.0.0.1", http_port) and port_free("127.0.0.1", nats_port)
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert not (home / "status.json").exists()
    finally:
        await reap(proc, pids)
