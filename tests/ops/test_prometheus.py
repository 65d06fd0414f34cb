"""The shipped Prometheus and Grafana files: promtool accepts them, the dashboard shows the seed's
thresholds, and a real Prometheus scraping a gateway sees a stall alert go pending, then firing.

These need Debian's `prometheus` package (`promtool`, `prometheus`); `.ci/run` installs it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from events.agents import AgentHeartbeat, AgentRegistered
from events.core.client import EventClient
from services.runtime.natsd import free_port
from services.settings import Settings
from tests.hosting import gateway_over
from tests.polling import eventually

OPS = Path(__file__).resolve().parents[2] / "ops"
needs_prometheus = pytest.mark.skipif(
    shutil.which("promtool") is None or shutil.which("prometheus") is None,
    reason="Debian package prometheus not installed (.ci/run installs it)",
)


def promtool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *argv], capture_output=True, text=True, timeout=60, check=False)


@needs_prometheus
def test_promtool_accepts_the_shipped_rules_and_config() -> None:
    rules = promtool("check", "rules", str(OPS / "prometheus" / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 14 rules found" in rules.stdout
    config = promtool("check", "config", str(OPS / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def _thresholds(panel: dict[str, Any]) -> list[float | None]:
    return [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def test_the_dashboard_keeps_the_seeds_panels_and_thresholds() -> None:
    dash = json.loads((OPS / "grafana" / "agent-health.json").read_text())
    panels = {p["title"]: p for p in dash["panels"]}
    assert dash["uid"] == "agent-health"
    assert _thresholds(panels["任务停滞时长"]) == [None, 3600, 14400]
    assert _thresholds(panels["待办任务数"]) == [None, 5, 10]
    assert _thresholds(panels["429 错误计数"]) == [None, 10, 50]
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    for name in ("agent_heartbeat_status", "agent_task_stagnation_seconds", "agent_workboard_pending",
                 "agent_429_error_rate", "agent_response_time_seconds",
                 "agentledger_watchdog_decisions_total"):
        assert name in exprs
    provisioning = (OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert "uid: agentledger-prometheus" in provisioning
    assert {p["datasource"]["uid"] for p in dash["panels"] if "datasource" in p} == {"agentledger-prometheus"}


# --- a real Prometheus ---------------------------------------------------------------------------

Client = TestClient[Any, Any]


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    # a business agent is stale after 1 s of silence (default 30 min)
    return Settings(nats_url=nats_url, home=str(tmp_path), batch_ms=20,
                    agent_classes={"business": {"stall_warning_s": 1}})


@pytest.fixture
async def gateway(
    client: EventClient, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> AsyncIterator[Client]:
    async with gateway_over(settings, client, aiohttp_client, ["agents"]) as http:
        yield http


def short_rules(path: Path) -> None:
    """The shipped rules, AgentStalled's `for: 5m` made 2s: the thresholds are the test's, the rule
    is the shipped one."""
    text = (OPS / "prometheus" / "alerts.yml").read_text()
    text, n = re.subn(r"(alert: AgentStalled\n\s+expr: .*\n\s+for: )5m", r"\g<1>2s", text)
    assert n == 1
    path.write_text(text)


@pytest.fixture
def prometheus(gateway: Client, tmp_path: Path) -> Any:
    short_rules(tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [alerts.yml]\n"
        "scrape_configs:\n"
        "  - job_name: agentledger\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{gateway.server.port}']}}]\n"
    )
    port = free_port()
    with open(tmp_path / "prometheus.log", "ab") as log:
        proc = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=log,
        )
        yield f"http://127.0.0.1:{port}"
        proc.terminate()
        proc.wait(timeout=20)


@needs_prometheus
async def test_a_real_prometheus_sees_a_stall_alert_go_pending_then_firing(
    prometheus: str, client: EventClient
) -> None:
    await client.publish("lawyer", AgentRegistered(agent_class="business", display_name="苏慎"))
    await client.publish("lawyer", AgentHeartbeat(status="busy"))
    seen: list[str] = []

    async with aiohttp.ClientSession() as http:
        async def state() -> str | None:
            try:
                async with http.get(f"{prometheus}/api/v1/alerts") as r:
                    alerts = (await r.json())["data"]["alerts"]
            except (aiohttp.ClientError, ValueError):
                return None  # Prometheus still starting
            found = [a for a in alerts if a["labels"]["alertname"] == "AgentStalled"
                     and a["labels"].get("agent_name") == "lawyer"]
            if found and (not seen or seen[-1] != found[0]["state"]):
                seen.append(found[0]["state"])
            return found[0]["state"] if found and found[0]["state"] == "firing" else None

        await eventually(state, timeout=60, what="AgentStalled firing")
    assert seen == ["pending", "firing"]
