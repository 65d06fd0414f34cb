"""Run the installed `agentledger` console script as a separate process, the way a person does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def script() -> str:
    beside = Path(sys.executable).parent / "agentledger"
    if beside.is_file():
        return str(beside)
    found = shutil.which("agentledger")
    if found is None:
        raise RuntimeError("the agentledger console script is not installed (pip install -e .)")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus every AGENTLEDGER_* variable, plus `extra`, wide enough for tables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLEDGER_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str


async def run(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60.0) -> Result:
    proc = await asyncio.create_subprocess_exec(
        script(),
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def start_up(home: Path, cwd: Path, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    """`agentledger up` on `home` in the background, its merged logs in `cwd/up.log` (a file, not
    a pipe: a pipe nobody reads would block the supervisor once full)."""
    with (cwd / "up.log").open("wb") as log:
        return await asyncio.create_subprocess_exec(
            script(), "up", "--home", str(home), *args, env=env, cwd=cwd,
            stdout=asyncio.subprocess.PIPE, stderr=log,
        )


async def reap(proc: asyncio.subprocess.Process, pids: Iterable[int]) -> None:
    """Whatever a failed test left running: `up` and the service processes it started."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
