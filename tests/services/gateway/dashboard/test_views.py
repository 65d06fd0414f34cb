"""The Reports, Watchdog and Runs streams: what each view carries, read over `/dashboard/sse`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp.test_utils import TestClient

from events.core.client import EventClient
from events.reports import Delivered, DeliveryAttempted, ReportFiled
from events.runs.client import get_logger
from events.watchdog import RoundWarned, Suspected
from services.gateway.app import create_app
from services.gateway.dashboard.views import TAIL_CHARS
from services.projector.service import ProjectorHost
from services.settings import Settings
from tests.hosting import running
from tests.services.gateway.admin_auth import ADMIN_TOKEN
from tests.services.gateway.dashboard.sse_client import next_data

Client = TestClient[Any, Any]
BOUND_S = 15.0


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return Settings(admin_token=ADMIN_TOKEN, nats_url=nats_url, home=str(tmp_path), batch_ms=20)


@pytest.fixture
async def http(client: EventClient, settings: Settings,
               aiohttp_client: Callable[..., Awaitable[Client]]) -> AsyncIterator[Client]:
    async with running(ProjectorHost(settings, client.nc, ["agents", "reports", "runs", "watchdog"])):
        yield await aiohttp_client(create_app(settings))


async def view_until(http: Client, page: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first view of `page` for which `done` holds, pushed by the stream (never polled)."""
    with anyio.fail_after(BOUND_S):
        resp = await http.get(f"/dashboard/sse?page={page}")
        try:
            while True:
                data, _ = await next_data(resp)
                if done(data["view"]):
                    return data["view"]
        finally:
            resp.close()


async def test_the_runs_view_carries_each_runs_status_duration_and_only_the_tail_of_its_text(
    http: Client, client: EventClient
) -> None:
    long = "".join(f"line {i:05d}\n" for i in range(500))
    await get_logger(client, "architect", run_id="run-long").set_task("TC-1").set_content(long).finish("success")
    await get_logger(client, "coo", run_id="run-open").line("still going")
    view = await view_until(http, "runs", lambda v: len(v["runs"]) == 2)
    newest, oldest = view["runs"]
    assert newest["run_id"] == "run-open" and newest["status"] == "following" and newest["tail"] == "still going\n"
    assert oldest["run_id"] == "run-long" and oldest["status"] == "success" and oldest["duration_ms"] is not None
    assert oldest["tail"] == long[-TAIL_CHARS:] and "content" not in oldest


async def test_the_reports_view_has_each_targets_queue_and_the_reports_with_deliveries_and_attempts(
    http: Client, client: EventClient
) -> None:
    await client.publish("rep-a", ReportFiled(title="a", targets=["owner", "coo"]))
    await client.publish("rep-a", DeliveryAttempted(target="owner", attempt=1, outcome="timeout",
                                                    retry_at=datetime.now(UTC) + timedelta(minutes=1)))
    await client.publish("rep-a", Delivered(target="coo", attempt=1, status_code=200))
    await client.publish("rep-b", ReportFiled(title="b", targets=["owner"]))
    view = await view_until(http, "reports", lambda v: len(v["reports"]) == 2 and len(v["attempts"]) == 2)
    assert [(q["target"], q["pending"]) for q in view["queues"]] == [("owner", 2)]
    assert view["queues"][0]["oldest_pending_at"] is not None
    assert [r["id"] for r in view["reports"]] == ["rep-b", "rep-a"]
    states = {(d["report_id"], d["target"]): d["status"] for d in view["deliveries"]}
    assert states == {("rep-a", "coo"): "delivered", ("rep-a", "owner"): "pending", ("rep-b", "owner"): "pending"}
    assert [(a["report_id"], a["target"], a["outcome"]) for a in view["attempts"]] == [
        ("rep-a", "owner", "timeout"), ("rep-a", "coo", "delivered")]


async def test_the_watchdog_view_lists_decisions_with_their_cause_newest_first(
    http: Client, client: EventClient
) -> None:
    await client.publish("coo", Suspected(key="s1", task_id="TC-2", silent_s=700, cause="silent 700 s holding TC-2"))
    await client.publish("architect", RoundWarned(key="r1", round=40, max_rounds=50, cause="round 40 of 50"))
    view = await view_until(http, "watchdog", lambda v: len(v["decisions"]) == 2)
    assert [(d["agent_id"], d["decision"], d["cause"]) for d in view["decisions"]] == [
        ("architect", "round_warned", "round 40 of 50"), ("coo", "suspected", "silent 700 s holding TC-2")]


async def test_a_page_whose_projection_is_not_running_says_so(
    client: EventClient, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    async with running(ProjectorHost(settings, client.nc, ["agents"])):
        http = await aiohttp_client(create_app(settings))
        for page in ("reports", "watchdog", "runs"):
            view = await view_until(http, page, lambda v: True)
            assert view == {"note": f"the {page} projection is not running"}
