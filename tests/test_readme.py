"""The README's Python examples run as written, against a real nats-server and services.

Each example is taken from README.md as it stands (so an edit that breaks it fails here) and run
in a process of its own, the way a user pastes it; only the NATS URL is replaced.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

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


async def run_example(code: str, nats_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `code` in `cwd`, where the agent's credentials file is where the README says it is
    (`agentledger agents add architect` writes it; here it holds the test account's login)."""
    assert URL in code
    login = urlsplit(nats_url)
    creds = cwd / ".agentledger" / "credentials" / "agents" / "architect.json"
    creds.parent.mkdir(parents=True, exist_ok=True)
    creds.write_text(json.dumps({"kind": "agent", "id": "architect", "user": login.username,
                                 "password": login.password}))
    code = code.replace(URL, f"nats://{login.hostname}:{login.port}")
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


async def test_the_sdk_example_publishes_a_heartbeat(
    client: EventClient, nats_url: str, tmp_path: Path
) -> None:
    proc = await run_example(example("stored at seq"), nats_url, tmp_path)
    assert re.fullmatch(r"stored at seq \d+\n", proc.stdout)


async def test_the_task_manager_example_prints_the_tree_and_runs_again(
    client: EventClient, nats_url: str, tmp_path: Path
) -> None:
    settings = Settings(nats_url=nats_url, home=str(tmp_path / "home"), batch_ms=20)
    nc = await nats.connect(nats_url)
    try:
        async with running(TasksService(nc)), running(ProjectorHost(settings, client.nc, ["tasks"])):  # type: ignore[arg-type]
            code = example("TaskManager(")
            code = code.replace("from task_manager import TaskManager\n", "")
            code = code.replace('tm = TaskManager(dsn="postgresql://...")\n', "")
            first = await run_example(code, nats_url, tmp_path)
            again = await run_example(code, nats_url, tmp_path)  # create is idempotent for the same fields
    finally:
        await nc.close()
    for proc in (first, again):
        assert proc.stdout.startswith("[") and "'id': 'TC-FLOW-001'" in proc.stdout, proc.stdout
    assert "'status': 'review'" in again.stdout


async def test_the_report_client_example_files_a_report(
    client: EventClient, nats_url: str, tmp_path: Path
) -> None:
    from events.core.keyring import Keyring, new_key
    from services import targets

    ring = Keyring({"k1": new_key()})
    cmd = targets.created(ring, "owner", {"kind": "slack", "url": "https://hooks.slack.invalid/x"})
    await targets.execute(client, "owner", lambda _: cmd)
    proc = await run_example(example("ReportClient(client)"), nats_url, tmp_path)
    assert re.fullmatch(r"filed r[0-9A-Z]{26} to owner\n", proc.stdout)


async def test_the_run_log_example_writes_a_run(client: EventClient, nats_url: str, tmp_path: Path) -> None:
    from tests.services.watchdog.streams import events_of

    proc = await run_example(example("get_logger("), nats_url, tmp_path)
    run_id = proc.stdout.split()[-1]
    names = [e.name for e in await events_of(client.nc, "runs", f"runs.{run_id}.*")]
    assert names == ["started", "following", "finished"]
