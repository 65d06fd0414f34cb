"""`serve gateway --workers N`: N processes listening on one port (SO_REUSEPORT), under `up`."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import aiohttp
import anyio
import pytest

from services.runtime.natsd import free_port, port_free
from services.settings import load
from tests.polling import eventually
from tests.services.cli.clirun import clean_env, reap, run, start_up


def listeners(port: int) -> set[int]:
    """Pids holding a listening TCP socket on `port` (from /proc/net/tcp and /proc/<pid>/fd)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def test_the_default_is_half_the_cores_and_at_least_one() -> None:
    assert load(env={}).workers == max(1, (os.cpu_count() or 1) // 2)
    assert load(env={"AGENTLEDGER_GATEWAY_WORKERS": "3"}).workers == 3


async def test_workers_is_refused_for_another_service(tmp_path: Path) -> None:
    done = await run("serve", "tasks", "--workers", "2", env=clean_env(), cwd=tmp_path)
    assert done.code == 2 and "--workers applies to the gateway" in done.err


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for the listening sockets")
async def test_two_gateway_workers_share_the_port_and_stop_with_up(tmp_path: Path) -> None:
    home, http_port = tmp_path / "home", free_port()
    env = clean_env(AGENTLEDGER_GATEWAY_WORKERS="2")
    proc = await start_up(home, tmp_path, env, "--nats-port", "0", "--http-port", str(http_port))
    holders: set[int] = set()
    try:
        async with aiohttp.ClientSession() as http:

            async def two_listen_and_healthy() -> bool:
                assert proc.returncode is None, (tmp_path / "up.log").read_text()
                nonlocal holders
                holders = listeners(http_port)
                try:
                    async with http.get(f"http://127.0.0.1:{http_port}/health") as r:
                        return r.status == 200 and len(holders) == 2
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(two_listen_and_healthy, 90, "two gateway processes on the port, healthy")
            assert proc.pid not in holders
            for _ in range(40):  # new connections each: the kernel spreads them over both
                async with aiohttp.ClientSession() as one, one.get(f"http://127.0.0.1:{http_port}/health") as r:
                    assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            await proc.communicate()
        assert proc.returncode == 0, (tmp_path / "up.log").read_text()
        assert port_free("127.0.0.1", http_port)
        for pid in holders:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        await reap(proc, holders)
