"""SIGKILL `agentledger serve watchdog` mid-ladder: the restarted one repeats no step."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from events.core.client import EventClient
from events.tasks.client import TaskClient
from services.settings import Settings
from tests.polling import eventually
from tests.services.cli.clirun import clean_env, script
from tests.services.watchdog.conftest import SHORT
from tests.services.watchdog.streams import decisions, events_of
from tests.services.watchdog.test_service import holding

ROOT = Path(__file__).resolve().parents[3]


def start(settings: Settings, home: Path) -> subprocess.Popen[bytes]:
    short = {"dev": {**SHORT["dev"], "recovery_s": 4}}
    env = clean_env(
        AGENTLEDGER_NATS_URL=settings.url, AGENTLEDGER_HOME=str(home), PYTHONPATH=str(ROOT),
        AGENTLEDGER_AGENT_CLASSES=json.dumps(short), AGENTLEDGER_WATCHDOG_INTERVAL_S="0.1",
        AGENTLEDGER_HEARTBEAT_WAKES="false",
    )
    return subprocess.Popen(
        [script(), "serve", "watchdog"], env=env, cwd=home,
        stdout=subprocess.DEVNULL, stderr=open(home / "watchdog.log", "ab"),
    )


async def test_sigkill_between_suspected_and_recovery_repeats_no_step(
    settings: Settings, client: EventClient, tasks_service: Any, tmp_path: Path
) -> None:
    nc = tasks_service
    await holding(client, TaskClient(nc))
    proc = start(settings, tmp_path)
    try:
        await eventually(lambda: decisions(nc), timeout=30, what="suspected")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert await decisions(nc) == [("suspected", "T1")]
        proc = start(settings, tmp_path)

        async def recovered() -> bool:
            return ("timed_out", "T1") in await decisions(nc)

        await eventually(recovered, timeout=30, what="recovery after the restart")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert await decisions(nc) == [("suspected", "T1"), ("timed_out", "T1")]
    history = [e.name for e in await events_of(nc, "tasks", "tasks.T1.*")]
    assert history.count("released") == 1
    assert len(await events_of(nc, "agents", "agents.architect.woken")) == 1
