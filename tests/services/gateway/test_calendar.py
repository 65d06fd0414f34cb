"""agentledger as the calendar backend: the slot API, the day with wake outcomes, the seed's
claw API, and the calendar metrics, through the gateway against real JetStream and the projector."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from events.calendar import ScheduleSynced, WakeSkipped
from events.core.client import EventClient
from services.gateway.app import create_app
from services.projector.service import ProjectorHost
from services.settings import Settings
from tests.hosting import running
from tests.polling import eventually
from tests.services.gateway.admin_auth import ADMIN_TOKEN, AS_ADMIN

Client = TestClient[Any, Any]
DAY = datetime.now(UTC).date().isoformat()


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return Settings(admin_token=ADMIN_TOKEN, nats_url=nats_url, home=str(tmp_path), batch_ms=20, snapshot_interval_s=0.5)


@pytest.fixture
async def http(client: EventClient, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]) -> AsyncIterator[Client]:
    async with running(ProjectorHost(settings, client.nc, ["calendar"])):
        yield await aiohttp_client(create_app(settings), headers=AS_ADMIN)


async def add(http: Client, agent: str, at: str, **more: Any) -> dict[str, Any]:
    r = await http.post("/api/calendar/slots", json={"agent_id": agent, "date": DAY, "scheduled_at": at, **more})
    assert r.status == 201, await r.text()
    return await r.json()  # type: ignore[no-any-return]


async def test_slots_are_numbered_changed_deleted_and_shown_on_their_day(http: Client) -> None:
    one, two = await add(http, "dev", "09:00", priority=2), await add(http, "ops", "10:00")
    assert (one["slot"]["id"], two["slot"]["id"]) == (1, 2)
    r = await http.put("/api/calendar/slots/1", json={"status": "deferred", "scheduled_at": "09:30"})
    assert r.status == 200 and (await r.json())["slot"]["scheduled_at"] == "09:30"
    assert (await http.delete("/api/calendar/slots/2")).status == 200

    async def day() -> list[dict[str, Any]]:
        rows = (await (await http.get(f"/api/calendar/day?date={DAY}")).json())["slots"]
        return rows if [r["scheduled_at"] for r in rows] == ["09:30"] else []

    (row,) = await eventually(day, 20, "the changed day in the read model")
    assert (row["agent_id"], row["slot_id"], row["status"], row["source"]) == ("dev", "1", "deferred", "calendar")


async def test_bad_slot_input_names_the_field(http: Client) -> None:
    r = await http.post("/api/calendar/slots", json={"agent_id": "dev", "date": "tomorrow", "scheduled_at": "09:00"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "$.date"
    r = await http.post("/api/calendar/slots", json={"agent_id": "dev", "date": DAY, "scheduled_at": "09:00", "colour": 1})
    assert r.status == 422 and "colour" in (await r.json())["error"]["message"]
    await add(http, "dev", "09:00")
    r = await http.put("/api/calendar/slots/1", json={"agent_id": "ops"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "$.agent_id"
    assert (await http.delete("/api/calendar/slots/7")).status == 404


async def test_sync_answers_full_then_diffs_and_410_for_a_token_it_cannot_know(http: Client) -> None:
    await add(http, "dev", "09:00")
    full = await (await http.get("/calendar/sync", params={"claw_identifier": "claw1"})).json()
    assert full["full"] is True and full["date"] == DAY and [s["id"] for s in full["schedules"]["dev"]] == [1]
    await add(http, "dev", "11:00")
    await http.put("/api/calendar/slots/1", json={"status": "completed"})
    diff = await (await http.get("/calendar/sync", params={"claw_identifier": "claw1", "since": full["syncToken"]})).json()
    assert [(d["op"], d.get("slotId") or d["slot"]["id"]) for d in diff["diff"]] == [("add", 2), ("update", 1)]
    r = await http.get("/calendar/sync", params={"claw_identifier": "claw1", "since": "1@1999-01-01"})
    assert r.status == 410
    r = await http.get("/calendar/sync", params={"claw_identifier": "claw1", "since": f"99999@{DAY}"})
    assert r.status == 410


async def test_a_claw_reports_status_and_pings(http: Client) -> None:
    await add(http, "dev", "09:00")
    r = await http.post("/calendar/agent/status", json={"agent_id": "dev", "claw_identifier": "claw1",
                                                        "status": "busy", "slot_id": 1, "slot_status": "started"})
    assert r.status == 200 and (await r.json())["seq"] > 0
    assert (await (await http.get("/calendar/agent/status?agent_id=dev")).json())["status"] == "busy"
    assert (await http.get("/calendar/agent/status?agent_id=ops")).status == 404
    full = await (await http.get("/calendar/sync", params={"claw_identifier": "claw1"})).json()
    assert full["schedules"]["dev"][0]["status"] == "started"
    assert (await http.post("/monitor/server/heartbeat", json={"claw_identifier": "claw1"})).status == 200
    r = await http.post("/calendar/agent/status", json={"agent_id": "dev"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "$.status"


async def test_metrics_count_wakes_by_outcome_and_the_age_of_each_sync(http: Client, client: EventClient) -> None:
    await client.publish("claw1", ScheduleSynced(full=True, token="t", date=DAY, schedules={}))
    for slot in ("1", "2"):
        await client.publish("dev", WakeSkipped(slot_id=slot, due_at=f"{DAY}T09:00:00Z", reason="agent_busy"))

    async def families() -> dict[str, Any]:
        text = await (await http.get("/metrics")).text()
        found: dict[str, Any] = {f.name: f for f in text_string_to_metric_families(text)}
        found["text"] = text
        return found if found.get("agentledger_calendar_wakes") and found["agentledger_calendar_wakes"].samples else {}

    found = await eventually(families, 20, "calendar metrics")
    wakes = {s.labels["outcome"]: s.value for s in found["agentledger_calendar_wakes"].samples}
    assert wakes == {"skipped": 2.0}
    assert 'agentledger_calendar_wakes_total{outcome="skipped"} 2.0' in found["text"]
    ages = {s.labels["claw"]: s.value for s in found["agentledger_calendar_sync_age_seconds"].samples}
    assert set(ages) == {"claw1"} and ages["claw1"] >= 0
