"""Reports, targets and the Alertmanager webhook over HTTP: gateway -> streams -> projector -> HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from events.core.client import EventClient
from services.gateway.app import create_app
from services.projector.service import ProjectorHost
from services.runtime import credentials
from services.settings import Settings
from tests.hosting import running
from tests.polling import eventually
from tests.services.notifier.stack import RING, history

Client = TestClient[Any, Any]
TOKEN = "adm-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOOK = "https://discord.example/api/webhooks/1/SECRET-webhook-token-abcdef"
REPORT = {"team": "clawteam", "worker": "backend-a", "task_id": "example-task", "progress": "80%",
          "done": "export complete", "next": "wait for aggregation", "status": "normal", "source": "checkpoint"}


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    credentials.issue(tmp_path, "agent:architect")  # an agent token the gateway knows at start
    return Settings(nats_url=nats_url, home=str(tmp_path), batch_ms=20, request_timeout_s=2.0,
                    admin_token=TOKEN, keyring=RING.to_env_value(), alert_routes="critical=owner;warning=coo",
                    alertmanager_token="am-token")


@pytest.fixture
async def http(client: EventClient, settings: Settings,
               aiohttp_client: Callable[..., Awaitable[Client]]) -> AsyncIterator[Client]:
    async with running(ProjectorHost(settings, client.nc, ["reports"])):
        yield await aiohttp_client(create_app(settings))


async def call(http: Client, method: str, path: str, status: int = 200, **kw: Any) -> Any:
    r = await http.request(method, path, headers=kw.pop("headers", AUTH), **kw)
    assert r.status == status, await r.text()
    return await r.json()


async def test_targets_keep_their_secrets_encrypted_and_masked(
    http: Client, client: EventClient, caplog: pytest.LogCaptureFixture, settings: Settings,
) -> None:
    caplog.set_level(logging.DEBUG)
    made = await call(http, "POST", "/api/admin/targets", 201, json={"name": "owner", "kind": "discord", "url": HOOK,
                                                                      "default": True})
    assert made["url"] == "https:****cdef" and made["default"] is True
    bad = await call(http, "POST", "/api/admin/targets", 422, json={"name": "x", "kind": "telegram", "chat_id": "1"})
    assert bad["error"]["field"] == "$.bot_token"
    updated = await call(http, "PUT", "/api/admin/targets/owner", json={"enabled": False})
    assert updated["enabled"] is False and updated["url"] == "https:****cdef"
    listed = await call(http, "GET", "/api/admin/targets")
    assert [t["name"] for t in listed["targets"]] == ["owner"]
    await call(http, "DELETE", "/api/admin/targets/owner")
    await call(http, "GET", "/api/admin/targets/owner", 404)
    raw = await client.js.get_msg("TARGETS", 1)
    assert b"SECRET-webhook-token" not in raw.data and b"https://discord" not in raw.data
    for answer in (made, updated, listed):
        assert "SECRET-webhook-token" not in repr(answer)
    assert "SECRET-webhook-token" not in caplog.text
    for f in Path(settings.home).rglob("*"):
        assert not f.is_file() or b"SECRET-webhook-token" not in f.read_bytes(), f


async def test_a_report_is_filed_to_the_default_targets_and_read_back(http: Client, client: EventClient) -> None:
    await call(http, "POST", "/api/admin/targets", 201, json={"name": "owner", "kind": "slack", "url": HOOK,
                                                              "default": True})
    await call(http, "POST", "/api/admin/targets", 201, json={"name": "other", "kind": "slack", "url": HOOK})
    filed = await call(http, "POST", "/api/reports", 201, json={**REPORT, "report_id": "r1"})
    assert filed["targets"] == ["owner"] and filed["seq"] == 1 and filed["duplicate"] is False
    again = await call(http, "POST", "/api/reports", 200, json={**REPORT, "report_id": "r1"})
    assert again["duplicate"] is True
    await call(http, "POST", "/api/reports", 409, json={**REPORT, "report_id": "r1", "progress": "90%"})

    async def projected() -> Any:
        return (await call(http, "GET", "/api/reports?status=pending&target=owner"))["reports"]

    [row] = await eventually(projected)
    assert (row["id"], row["progress"], row["targets"]) == ("r1", "80%", ["owner"])
    one = await call(http, "GET", "/api/reports/r1")
    assert [d["target"] for d in one["deliveries"]] == ["owner"] and one["attempts"] == []
    metrics = await (await http.get("/metrics")).text()
    assert 'agentledger_reports_pending{target="owner"} 1.0' in metrics
    assert 'agentledger_report_deliveries_total{outcome="delivered",target="owner"} 0' in metrics
    assert "agentledger_report_oldest_pending_seconds" in metrics


async def test_bad_reports_are_refused_naming_the_field_and_a_dry_run_writes_nothing(
    http: Client, client: EventClient,
) -> None:
    await call(http, "POST", "/api/admin/targets", 201, json={"name": "owner", "kind": "slack", "url": HOOK})
    assert (await call(http, "POST", "/api/reports", 422, json={**REPORT, "colour": "red"}))["error"]["field"] == "$.colour"
    assert (await call(http, "POST", "/api/reports", 422, json=REPORT))["error"]["field"] == "$.targets"
    unknown = await call(http, "POST", "/api/reports", 422, json={**REPORT, "targets": ["owner", "nope"]})
    assert unknown["error"]["field"] == "$.targets[1]"
    long = await call(http, "POST", "/api/reports", 422, json={**REPORT, "progress": "x" * 501, "targets": ["owner"]})
    assert long["error"]["field"] == "$.progress"
    dry = await call(http, "POST", "/api/reports", 200, json={**REPORT, "targets": ["owner"], "dry_run": True})
    assert dry["dry_run"] is True and "Progress: 80%" in dry["text"]
    assert await history(client) == []


ALERT = {"status": "firing", "labels": {"alertname": "AgentDown", "severity": "critical", "instance": "w1"},
         "annotations": {"summary": "agent w1 down"}, "startsAt": "2026-11-21T08:59:00Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": "a1b2c3d4"}


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "groupKey": "{}:{alertname=\"AgentDown\"}", "status": "firing", "receiver": "agentledger",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
            "truncatedAlerts": 0, "alerts": list(alerts)}


async def test_alertmanager_alerts_become_deduplicated_notices_routed_by_severity(
    http: Client, client: EventClient,
) -> None:
    am = {"Authorization": "Bearer am-token"}
    await call(http, "POST", "/api/admin/targets", 201, json={"name": "owner", "kind": "slack", "url": HOOK})
    await call(http, "POST", "/api/alertmanager", 401, json=webhook(ALERT), headers={})
    info = {**ALERT, "fingerprint": "ffff", "labels": {"alertname": "Note", "severity": "info"}}
    first = await call(http, "POST", "/api/alertmanager", json=webhook(ALERT, info), headers=am)
    assert first == {"alerts": 2, "recorded": 2, "notices": ["alert-a1b2c3d4-firing-20261121085900"]}
    again = await call(http, "POST", "/api/alertmanager", json=webhook(ALERT, info), headers=am)
    assert again["recorded"] == 0 and again["notices"] == []
    resolved = {**ALERT, "status": "resolved", "endsAt": "2026-11-21T09:10:00Z"}
    done = await call(http, "POST", "/api/alertmanager", json=webhook(resolved), headers=am)
    assert done["notices"] == ["alert-a1b2c3d4-resolved-20261121085900"]
    filed = [e for s, e in await history(client) if s.endswith(".filed")]
    assert [(e.severity, e.targets, e.link, e.status) for e in filed] == [
        ("critical", ["owner"], "http://prom/graph", "firing"), ("critical", ["owner"], "http://prom/graph", "resolved")]
    assert len(await history(client, "alerts")) == 3
    bad = await call(http, "POST", "/api/alertmanager", 422, json={**webhook(ALERT), "version": "3"}, headers=am)
    assert bad["error"]["field"] == "$.version"


async def test_the_admin_abandons_and_retries_a_report_over_http_and_an_agent_may_not(
    http: Client, client: EventClient, tmp_path: Path
) -> None:
    await call(http, "POST", "/api/admin/targets", 201, json={"name": "owner", "kind": "slack", "url": HOOK,
                                                              "default": True})
    await call(http, "POST", "/api/reports", 201, json={**REPORT, "report_id": "r9"})
    agent = credentials.load(tmp_path, "agent:architect")
    assert agent is not None
    err = await call(http, "POST", "/api/reports/r9/abandon", 403, json={},
                     headers={"Authorization": f"Bearer {agent.token}"})
    assert "reports.*.abandoned" in err["error"]["message"]
    done = await call(http, "POST", "/api/reports/r9/abandon", json={"reason": "owner is away"})
    assert done["changed"] is True and len(done["seqs"]) == 1
    assert (await call(http, "POST", "/api/reports/r9/abandon", json={}))["changed"] is False  # nothing open
    retried = await call(http, "POST", "/api/reports/r9/retry", json={"target": "owner"})
    assert retried["changed"] is True
    names = [e.name for subject, e in await history(client) if subject.startswith("reports.r9.")]
    assert names == ["filed", "abandoned", "retry_requested"]
    await call(http, "POST", "/api/reports/nope/retry", 404, json={})
    await call(http, "POST", "/api/reports/r9/retry", 404, json={"target": "elsewhere"})
    bad = await call(http, "POST", "/api/reports/r9/retry", 422, json={"target": "a b"})
    assert bad["error"]["field"] == "$.target"
    await call(http, "POST", "/api/reports/r9/abandon", 422, json={"why": "x"})
