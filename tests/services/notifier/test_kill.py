"""SIGKILL the notifier mid-drain, restart it: nothing recorded as delivered is sent again."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

from events.core.client import EventClient
from events.reports import Delivered, text
from events.reports.client import ReportClient
from tests.polling import eventually
from tests.services.cli.clirun import script
from tests.services.conftest import Served
from tests.services.notifier.stack import RING, add_target, history
from tests.services.notifier.test_service import file_many

ROOT = Path(__file__).resolve().parents[3]
REPORTS = 60


def start(nats_url: str, home: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLEDGER_")}
    env.update(AGENTLEDGER_NATS_URL=nats_url, AGENTLEDGER_HOME=str(home), PYTHONPATH=str(ROOT),
               AGENTLEDGER_KEYRING=RING.to_env_value())
    return subprocess.Popen([script(), "serve", "notifier"], env=env, cwd=home, stdout=subprocess.DEVNULL,
                            stderr=open(home / "notifier.log", "ab"))


async def delivered(client: EventClient) -> set[str]:
    return {s.split(".")[1] for s, e in await history(client) if isinstance(e, Delivered)}


async def test_sigkill_mid_drain_then_restart_resends_nothing_recorded_as_delivered(
    client: EventClient, served: Served, nats_url: str, tmp_path: Path,
) -> None:
    await add_target(client, "d", {"kind": "discord", "url": f"{served.base}/discord/d/tok"})
    ids = await file_many(client, REPORTS, ["d"])
    received = served.platforms.received["d"]
    gate = served.platforms.hold("d", after=REPORTS // 4)  # a quarter answered, the next one held
    proc = start(nats_url, tmp_path)
    try:
        await eventually(lambda: served.platforms.waiting["d"] == 1, what="a quarter sent, one in flight")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        gate.set()  # the platform gets the one in flight, whose answer nobody records
        await eventually(lambda: len(received) == REPORTS // 4 + 1)
        recorded = await delivered(client)
        assert 0 < len(recorded) <= REPORTS // 4
        proc = start(nats_url, tmp_path)

        async def all_recorded() -> bool:
            return len(await delivered(client)) == REPORTS

        await eventually(all_recorded, what="every report recorded as delivered")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    rc = ReportClient(client)
    texts = {i: text((await rc.get(i))[0].filed) for i in ids}  # type: ignore[arg-type]
    sent = Counter(received)
    assert set(sent) == set(texts.values())
    assert all(sent[texts[i]] == 1 for i in recorded)  # recorded before the kill: never sent again
    assert sum(n - 1 for n in sent.values()) == 1  # the attempt in flight at the kill, sent again
