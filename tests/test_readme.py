"""The README's Python examples run as written, against a real nats-server and services.

Each example is taken from README.md as it stands (so an edit that breaks it fails here) and run
in a process of its own, the way a user pastes it; only the NATS URL is replaced.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import nats

from events.core.client import EventClient
from services.projector.host import ProjectorHost
from services.settings import Settings
from services.tasks.service import TasksService
from tests.hosting import running

README = Path(__file__).resolve().parents[1] / "README.md"
URL = "nats://127.0.0.1:4222"


def example(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"one README python block with {marker!r}, found {len(found)}"
    return found[0]


async def run_example(code: str, nats_url: str) -> subprocess.CompletedProcess[str]:
    assert URL in code
    code = code.replace(URL, nats_url)
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc


async def test_the_sdk_example_publishes_a_heartbeat(client: EventClient, nats_url: str) -> None:
    proc = await run_example(example("stored at seq"), nats_url)
    assert re.fullmatch(r"stored at seq \d+\n", proc.stdout)


async def test_the_task_manager_example_runs_as_written(
    client: EventClient, nats_url: str, tmp_path: Path
) -> None:
    settings = Settings(nats_url=nats_url, home=str(tmp_path / "home"), batch_ms=20)
    nc = await nats.connect(nats_url)
    try:
        async with running(TasksService(nc)), running(ProjectorHost(settings, client.nc, ["tasks"])):  # type: ignore[arg-type]
            code = example("TaskManager(")
            code = code.replace("from task_manager import TaskManager\n", "")
            code = code.replace('tm = TaskManager(dsn="postgresql://...")\n', "")
            proc = await run_example(code, nats_url)
    finally:
        await nc.close()
    assert proc.stdout.startswith("[")  # the task tree, a list


async def test_the_run_log_example_writes_a_run(client: EventClient, nats_url: str) -> None:
    from tests.services.watchdog.streams import events_of

    proc = await run_example(example("get_logger("), nats_url)
    run_id = proc.stdout.split()[-1]
    names = [e.name for e in await events_of(client.nc, "runs", f"runs.{run_id}.*")]
    assert names == ["started", "following", "finished"]
