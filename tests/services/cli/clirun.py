"""Run the installed `agentledger` console script as a separate process, the way a person does."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
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
