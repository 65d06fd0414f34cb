"""One home, one owner: a second `up`/`serve projector` is refused naming the holder; a dead
holder's lock is taken over."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import anyio
import msgspec
import pytest

from services.runtime.homelock import LOCK_NAME, Holder, HomeBusy, HomeLock, hold
from services.runtime.natsd import free_port
from tests.services.cli.clirun import clean_env, run

HOLD_AND_WAIT = """
import sys
from services.runtime.homelock import HomeLock
lock = HomeLock(sys.argv[1], "up").acquire()
lock.ports(http=8080, nats=4222)
print("held", flush=True)
sys.stdin.read()
"""


def test_a_second_owner_is_refused_naming_the_holder_and_its_ports(tmp_path: Path) -> None:
    with hold(tmp_path, "up") as first:
        first.ports(http=8081, nats=4333)
        with pytest.raises(HomeBusy) as busy:
            HomeLock(tmp_path, "serve projector").acquire()
        text = str(busy.value)
        assert f"pid {os.getpid()} (agentledger up, started " in text
        assert "http 8081, nats 4333" in text and str(tmp_path) in text and "\n" not in text
        held = msgspec.json.decode((tmp_path / LOCK_NAME).read_bytes(), type=Holder)
        assert (held.pid, held.command, held.ports) == (os.getpid(), "up", {"http": 8081, "nats": 4333})
    again = HomeLock(tmp_path, "up").acquire()  # released on exit
    again.release()
    assert oct((tmp_path / LOCK_NAME).stat().st_mode & 0o777) == "0o600"


async def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_AND_WAIT, str(tmp_path), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[3],
    )
    assert proc.stdout is not None
    with anyio.fail_after(30):
        assert (await proc.stdout.readline()).strip() == b"held"
    with pytest.raises(HomeBusy, match=f"pid {proc.pid} "):
        HomeLock(tmp_path, "up").acquire()
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    stale = msgspec.json.decode((tmp_path / LOCK_NAME).read_bytes(), type=Holder)
    assert stale.pid == proc.pid  # the dead holder's record is still there
    with hold(tmp_path, "up"):
        assert msgspec.json.decode((tmp_path / LOCK_NAME).read_bytes(), type=Holder).pid == os.getpid()


async def test_up_and_serve_projector_on_a_busy_home_are_refused_in_one_line(
    tmp_path: Path, nats_url: str
) -> None:
    home = tmp_path / "home"
    with hold(home, "up") as lock:
        lock.ports(http=8080)
        up = await run("up", "--home", str(home), "--nats-port", "0", "--http-port", str(free_port()),
                       env=clean_env(), cwd=tmp_path)
        serve = await run("serve", "projector", "--home", str(home),
                          env=clean_env(AGENTLEDGER_NATS_URL=nats_url), cwd=tmp_path)
    for r in (up, serve):
        lines = r.err.strip().splitlines()
        assert r.code == 1, r.err
        assert lines[-1].startswith("agentledger: home ") and f"in use by pid {os.getpid()} (agentledger up" in lines[-1]
        assert "Traceback" not in r.err
    assert not (home / "nats").exists()  # refused before the store was touched
