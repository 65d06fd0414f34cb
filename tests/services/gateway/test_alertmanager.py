"""The real Alertmanager (Debian `prometheus-alertmanager`) with the shipped alertmanager.yml,
pointed at a test gateway: alerts reach the Feishu stand-ins as cards, resolving sends the notice.

Only the address, the token file and the timers (30s/5m -> 1s, so the test takes seconds) of the
shipped file are changed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from events.core.client import EventClient
from services.gateway.app import create_app
from services.notifier import Notifier
from services.runtime.natsd import free_port
from services.settings import Settings
from tests.hosting import running
from tests.polling import eventually
from tests.services.conftest import Served
from tests.services.notifier.stack import RING, add_target, history

SHIPPED = Path(__file__).resolve().parents[3] / "ops" / "alertmanager" / "alertmanager.yml"
BINARY = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
TOKEN = "am-secret-token"


@pytest.fixture
async def gateway(client: EventClient, tmp_path: Path, nats_url: str) -> AsyncIterator[str]:
    settings = Settings(nats_url=nats_url, home=str(tmp_path), alertmanager_token=TOKEN,
                        alert_routes="critical=owner;warning=coo")
    server = TestServer(create_app(settings))
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def alertmanager(gateway: str, tmp_path: Path) -> Any:
    if BINARY is None:
        pytest.skip("Alertmanager is not installed (.ci/run installs prometheus-alertmanager)")
    (tmp_path / "token").write_text(TOKEN)
    config = (SHIPPED.read_text().replace("http://127.0.0.1:8080", gateway)
              .replace("/etc/agentledger/alertmanager.token", str(tmp_path / "token"))
              .replace("group_wait: 30s", "group_wait: 1s").replace("group_interval: 5m", "group_interval: 1s"))
    (tmp_path / "am.yml").write_text(config)
    port = free_port()
    with open(tmp_path / "alertmanager.log", "ab") as log:
        proc = subprocess.Popen(
            [BINARY, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'am'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=log,
        )
        yield f"http://127.0.0.1:{port}"
        proc.terminate()
        proc.wait(timeout=10)


async def post_alerts(http: aiohttp.ClientSession, am: str, alerts: list[dict[str, Any]]) -> None:
    async def ready() -> bool:
        try:
            async with http.get(f"{am}/-/ready") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(ready, what="alertmanager ready")
    async with http.post(f"{am}/api/v2/alerts", json=alerts) as r:
        assert r.status == 200, await r.text()


async def agent_down(client: EventClient) -> list[tuple[str, str]]:
    return [(e.severity, e.name) for _, e in await history(client, "alerts") if e.alertname == "AgentDown"]


def alert(name: str, severity: str, **extra: Any) -> dict[str, Any]:
    return {"labels": {"alertname": name, "severity": severity, "instance": "w1"},
            "annotations": {"summary": f"{name} on w1", "dashboard": "http://grafana/d/agent-health"},
            "generatorURL": f"http://prometheus/graph?alert={name}", **extra}


async def test_alerts_from_the_real_alertmanager_reach_feishu_as_cards_and_resolve(
    client: EventClient, served: Served, alertmanager: str,
) -> None:
    await add_target(client, "owner", {"kind": "feishu", "url": f"{served.base}/feishu/owner"})
    await add_target(client, "coo", {"kind": "feishu", "url": f"{served.base}/feishu/coo"})
    got = served.platforms.received
    start = datetime.now(UTC) - timedelta(minutes=1)
    critical = alert("AgentDown", "critical", startsAt=start.isoformat())
    async with running(Notifier(client.nc, keyring=RING, timeout_s=5.0)):
        inhibited = alert("AgentDown", "warning")  # same alertname and instance as the critical one
        await post_alerts(served.http, alertmanager,
                          [critical, inhibited, alert("QueueSlow", "warning"), alert("Note", "info")])
        await eventually(lambda: got["owner"] and got["coo"], what="a card for the owner and one for the COO")
        [owner] = got["owner"]
        assert owner["header"]["template"] == "red" and owner["header"]["title"]["content"] == "[CRITICAL] AgentDown on w1"
        assert any(e.get("tag") == "action" and "alert=AgentDown" in e["actions"][0]["url"] for e in owner["elements"])
        assert "Dashboard: http://grafana/d/agent-health" in owner["elements"][0]["content"]
        assert got["coo"][0]["header"]["template"] == "yellow"
        assert got["coo"][0]["header"]["title"]["content"] == "[WARNING] QueueSlow on w1"
        assert await agent_down(client) == [("critical", "firing")]  # the warning is inhibited
        await post_alerts(served.http, alertmanager, [{**critical, "endsAt": datetime.now(UTC).isoformat()}])
        await eventually(lambda: len(got["owner"]) == 2, what="the resolved notice")
        await eventually(lambda: len(got["coo"]) == 2, what="the warning the critical one inhibited")
    assert got["owner"][1]["header"]["title"]["content"] == "[RESOLVED] AgentDown on w1"
    assert got["coo"][1]["header"]["title"]["content"] == "[WARNING] AgentDown on w1"  # once no longer inhibited
    assert sorted(await agent_down(client)) == [("critical", "firing"), ("critical", "resolved"), ("warning", "firing")]
    assert not served.platforms.refused
