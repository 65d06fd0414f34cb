"""The dashboard in a real headless chromium against a real gateway, projector and tasks service.

A scripted fleet (registrations, heartbeats, tasks, a raw invalid event) is published first;
then each page must load with no console error, no failed request and no request leaving the
gateway, and a screenshot of each is kept under the test's tmp dir.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import nats
import pytest
from aiohttp.test_utils import TestServer

from events.agents import AgentHeartbeat, AgentRegistered
from events.core.client import EventClient
from events.reports import DeliveryAttempted, ReportFiled
from events.runs.client import get_logger
from events.watchdog import Suspected
from services.gateway.app import create_app
from services.gateway.dashboard import PAGES
from services.projector.service import ProjectorHost
from services.settings import Settings
from services.tasks.service import TasksService
from tests.hosting import raw_pub, running
from tests.services.gateway.admin_auth import ADMIN_TOKEN, AS_ADMIN
from tests.services.gateway.dashboard.browser import browser, opened, watched_page
from tests.services.gateway.proxy.fixtures import (
    GATEWAY_KEY,
    KEYRING,
    create_backend,
    start_upstream,
)

WAIT_MS = 15_000  # a bound for the browser's own polling waits, not a timing assertion
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
KEY = "sk-dashboard-test-0123456789abcdef"
HOLD_S = 2.0  # how long runs.js is held back, as a slow link would
PROJECTIONS = ["agents", "tasks", "providers", "calendar", "reports", "watchdog", "runs"]


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return Settings(admin_token=ADMIN_TOKEN, nats_url=nats_url, home=str(tmp_path), batch_ms=20,
                    keyring=KEYRING.to_env_value(), gateway_keys=GATEWAY_KEY, request_timeout_s=5.0)


@pytest.fixture
async def gateway(client: EventClient, settings: Settings, nats_url: str,
                  aiohttp_server: Callable[..., Awaitable[TestServer]]) -> AsyncIterator[str]:
    nc = await nats.connect(nats_url)
    try:
        async with running(ProjectorHost(settings, client.nc, PROJECTIONS)), \
                running(TasksService(nc)):  # type: ignore[arg-type]
            server = await aiohttp_server(create_app(settings))
            yield str(server.make_url("")).rstrip("/")
    finally:
        await nc.close()


async def script_fleet(client: EventClient, gateway: str, nats_url: str) -> None:
    await client.publish("architect", AgentRegistered(display_name="Architect", agent_class="high_frequency"))
    await client.publish("architect", AgentHeartbeat(status="busy", current_task="TC-FLOW-001", round=45))
    await client.publish("coo", AgentRegistered(display_name="COO", agent_class="business"))
    await client.publish("coo", AgentHeartbeat(status="idle"))
    async with aiohttp.ClientSession(headers=AS_ADMIN) as http:
        for task_id, priority in (("TC-FLOW-001", "P0"), ("TC-FLOW-002", "P1")):
            r = await http.post(f"{gateway}/api/tasks", json={"task_id": task_id, "title": f"do {task_id}",
                                                              "priority": priority})
            assert r.status in (200, 201), await r.text()
        for verb, body in (("claim", {}), ("start_attempt", {}), ("finish_attempt", {"outcome": "gateway_timeout"})):
            r = await http.post(f"{gateway}/api/tasks/TC-FLOW-002/{verb}", json={"agent_id": "coo", **body})
            assert r.status == 200, await r.text()
        r = await http.post(f"{gateway}/api/calendar/slots", json={
            "agent_id": "architect", "date": datetime.now(UTC).date().isoformat(), "scheduled_at": "23:59"})
        assert r.status == 201, await r.text()
    await raw_pub(nats_url, "agents.rogue.heartbeat", b'{"status": "sleeping"}')
    await script_ops(client)


async def script_ops(client: EventClient) -> None:
    """A report with a failed attempt queued for `owner`, a watchdog decision and a finished run."""
    await client.publish("rep-nightly", ReportFiled(title="nightly digest", source="cron", targets=["owner"]))
    await client.publish("rep-nightly", DeliveryAttempted(
        target="owner", attempt=1, outcome="failed", status_code=502, error="bad gateway",
        retry_at=datetime.now(UTC) + timedelta(minutes=5)))
    await client.publish("coo", Suspected(key="suspected:coo:TC-FLOW-002", task_id="TC-FLOW-002", silent_s=700,
                                          cause="no heartbeat for 700 s while holding TC-FLOW-002"))
    run = get_logger(client, "architect", run_id="run-build-1").set_task("TC-FLOW-001")
    await run.line("compiling")
    await run.set_content("tests passed\n").finish("success")


async def test_every_page_loads_clean_from_the_gateway_alone_at_desktop_and_phone_width(
    client: EventClient, gateway: str, nats_url: str, tmp_path: Path
) -> None:
    await script_fleet(client, gateway, nats_url)
    async with browser() as chromium:
        for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
            context = await chromium.new_context(viewport=size)  # type: ignore[attr-defined]
            for name in PAGES:
                page, watch = await watched_page(context, gateway)
                await page.goto(f"{gateway}/dashboard/{name}")
                await page.wait_for_selector("#link[data-state=live]", timeout=WAIT_MS)
                if name == "providers":
                    await page.fill("#token-input", ADMIN_TOKEN)
                    await page.click("#token-form button")
                    await page.wait_for_selector("#backend-form", timeout=WAIT_MS)
                else:
                    await page.wait_for_selector("main table", timeout=WAIT_MS)
                if name == "fleet":
                    coo = await page.wait_for_selector("tr[data-id=coo]:has-text('gateway_timeout')", timeout=WAIT_MS)
                    assert "TC-FLOW-002" in await coo.inner_text()  # type: ignore[union-attr]
                if name == "tasks":
                    await page.wait_for_selector("tr[data-id=TC-FLOW-001]", timeout=WAIT_MS)
                if name == "calendar":
                    await page.wait_for_selector("tr[data-id=slot-architect-1]:has-text('23:59')", timeout=WAIT_MS)
                if name == "reports":
                    await page.wait_for_selector("tr[data-id=queue-owner]:has-text('1')", timeout=WAIT_MS)
                    await page.wait_for_selector("tr[data-id=report-rep-nightly]:has-text('pending')", timeout=WAIT_MS)
                    await page.wait_for_selector("main tr:has-text('bad gateway'):has-text('502')", timeout=WAIT_MS)
                if name == "watchdog":
                    await page.wait_for_selector("main tr:has-text('suspected'):has-text('no heartbeat for 700 s')",
                                                 timeout=WAIT_MS)
                if name == "runs":
                    await page.wait_for_selector("tr[data-id=run-run-build-1]:has-text('success'):has-text('tests passed')",
                                                 timeout=WAIT_MS)
                assert await page.is_hidden("#token-form"), f"{name} at {size_name} still asks for a token"
                overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                await page.screenshot(path=str(tmp_path / f"dashboard-{name}-{size_name}.png"), full_page=True)
                await page.close()
                assert watch.problems() == [], f"{name} at {size_name}"
                assert overflow <= 0, f"{name} at {size_name} is wider than the window by {overflow}px"
            await context.close()
    assert (tmp_path / "dashboard-fleet-desktop.png").stat().st_size > 10_000


async def test_a_heartbeat_published_over_nats_appears_on_the_fleet_page_without_a_reload(
    client: EventClient, gateway: str, nats_url: str
) -> None:
    await script_fleet(client, gateway, nats_url)
    async with opened(gateway, "/dashboard/fleet", DESKTOP) as page:
        await page.wait_for_selector("tr[data-id=architect]", timeout=WAIT_MS)
        await page.evaluate("window.__sameDocument = true")
        assert await page.query_selector("tr[data-id=scout]") is None
        await raw_pub(nats_url, "agents.scout.heartbeat", b'{"status":"busy","current_task":"TC-FLOW-002","round":2}')
        row = await page.wait_for_selector("tr[data-id=scout]", timeout=WAIT_MS)
        text = await row.inner_text()  # type: ignore[union-attr]
        assert "busy" in text and "TC-FLOW-002" in text
        assert await page.evaluate("window.__sameDocument") is True, "the page was reloaded"


async def test_a_run_log_written_with_get_logger_appears_on_the_runs_page_without_a_reload(
    client: EventClient, gateway: str
) -> None:
    async with opened(gateway, "/dashboard/runs", PHONE) as page:
        await page.wait_for_selector("#link[data-state=live]", timeout=WAIT_MS)
        await page.evaluate("window.__sameDocument = true")
        run = get_logger(client, "scout", run_id="run-live-1").set_task("TC-LIVE-1")
        await run.line("step one of three")
        row = await page.wait_for_selector("tr[data-id=run-run-live-1]:has-text('step one of three')", timeout=WAIT_MS)
        assert "scout" in await row.inner_text()  # type: ignore[union-attr]
        await run.set_content("all three steps done\n").finish("failed")
        await page.wait_for_selector("tr[data-id=run-run-live-1]:has-text('failed'):has-text('all three steps done')",
                                     timeout=WAIT_MS)
        await page.click("a[href='#run-live-1']")
        log = await page.wait_for_selector("#run-detail pre.log", timeout=WAIT_MS)
        text = await log.inner_text()  # type: ignore[union-attr]
        assert "step one of three" in text and "all three steps done" in text, text
        assert await page.evaluate("window.__sameDocument") is True, "the page was reloaded"


async def test_a_page_whose_script_arrives_late_still_renders_its_first_view(
    client: EventClient, gateway: str, nats_url: str
) -> None:
    """runs.js comes late, as on a slow link: the stream must not start, and its first view must
    not be lost, before every page script ran. (The hold is the simulated slow link, not a wait
    for something to happen.)"""
    await script_fleet(client, gateway, nats_url)
    streaming = anyio.Event()

    async def late(route: Any) -> None:
        await anyio.sleep(HOLD_S)
        await route.continue_()

    async with browser() as chromium:
        context = await chromium.new_context(viewport=PHONE)  # type: ignore[attr-defined]
        page, watch = await watched_page(context, gateway)
        await page.route("**/static/runs.js", late)
        page.on("request", lambda r: "/dashboard/sse" in r.url and streaming.set())
        await page.goto(f"{gateway}/dashboard/runs")
        await page.wait_for_selector("tr[data-id=run-run-build-1]", timeout=WAIT_MS)
        await page.close()
    assert watch.problems() == [] and streaming.is_set()


async def test_a_rejected_raw_event_appears_on_the_ledger_page_with_its_field(
    client: EventClient, gateway: str, nats_url: str
) -> None:
    async with opened(gateway, "/dashboard/ledger", DESKTOP) as page:
        await page.wait_for_selector("#link[data-state=live]", timeout=WAIT_MS)
        await raw_pub(nats_url, "agents.rogue.heartbeat", b'{"status": "sleeping"}')
        row = await page.wait_for_selector("tr[data-id='AGENTS-1']", timeout=WAIT_MS)
        text = await row.inner_text()  # type: ignore[union-attr]
        assert "agents.rogue.heartbeat" in text and "$.status" in text


async def admin_token(page: Any) -> None:
    await page.fill("#token-input", ADMIN_TOKEN)
    await page.click("#token-form button")
    await page.wait_for_selector("#backend-form", timeout=WAIT_MS)


async def test_a_429_from_an_upstream_appears_in_the_cooldown_log_without_a_reload(
    client: EventClient, gateway: str
) -> None:
    upstream = await start_upstream("limited", status=429, headers={"Retry-After": "120"})
    try:
        await create_backend(client, "bkd_hot", upstream.url)
        async with opened(gateway, "/dashboard/providers", DESKTOP) as page:
            await admin_token(page)
            await page.wait_for_selector("tr[data-id=bkd_hot]", timeout=WAIT_MS)
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {GATEWAY_KEY}"}) as http:
                r = await http.post(f"{gateway}/v1/chat/completions",
                                    json={"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]})
                assert r.status in (429, 503), await r.text()
            row = await page.wait_for_selector("tr[data-id^=cooldown-bkd_hot]", timeout=WAIT_MS)
            text = await row.inner_text()  # type: ignore[union-attr]
            assert "120" in text, text
            backend = await page.inner_text("tr[data-id=bkd_hot]")
            assert "cooling" in backend, backend
            bar = await page.wait_for_selector("svg.chart rect[data-requests]", timeout=WAIT_MS)
            assert await bar.get_attribute("data-requests") == "1"  # type: ignore[union-attr]
    finally:
        assert upstream.server is not None
        await upstream.server.close()


async def test_a_backend_added_through_the_form_appears_with_a_masked_key_and_can_be_disabled(
    client: EventClient, gateway: str
) -> None:
    async with opened(gateway, "/dashboard/providers", DESKTOP) as page:
        await admin_token(page)
        form: Any = "#backend-form"
        await page.fill(f"{form} input[name=id]", "bkd_local")
        await page.fill(f"{form} input[name=name]", "local")
        await page.fill(f"{form} input[name=api_base_url]", "http://127.0.0.1:9/v1")
        await page.fill(f"{form} input[name=api_key]", KEY)
        await page.click(f"{form} button[type=submit]")
        row = await page.wait_for_selector("tr[data-id=bkd_local]", timeout=WAIT_MS)
        text = await row.inner_text()  # type: ignore[union-attr]
        assert "****" in text and KEY not in text and KEY not in await page.content()
        stored = await page.evaluate("JSON.stringify(localStorage)")
        assert ADMIN_TOKEN not in stored and ADMIN_TOKEN not in page.url
        await page.click("tr[data-id=bkd_local] button")
        await page.wait_for_selector(f"{form} strong:has-text('Edit bkd_local')", timeout=WAIT_MS)
        await page.select_option(f"{form} select[name=enabled]", "false")
        await page.click(f"{form} button[type=submit]")
        row = await page.wait_for_selector("tr[data-id=bkd_local]:has-text('disabled')", timeout=WAIT_MS)
        assert "****" in await row.inner_text()  # type: ignore[union-attr]


async def test_a_linked_task_shows_its_tree_and_a_raced_claim_as_a_noop_with_its_reason(
    client: EventClient, gateway: str, nats_url: str
) -> None:
    await script_fleet(client, gateway, nats_url)
    async with aiohttp.ClientSession(headers=AS_ADMIN) as http:
        r = await http.post(f"{gateway}/api/tasks/TC-FLOW-001/claim", json={"agent_id": "architect"})
        assert r.status == 200, await r.text()
    async with opened(gateway, "/dashboard/tasks#TC-FLOW-001", PHONE) as page:
        await page.wait_for_selector("tr[data-id=tree-TC-FLOW-001]", timeout=WAIT_MS)
        await raw_pub(nats_url, "tasks.TC-FLOW-001.claimed", b'{"agent_id":"coo"}')
        row = await page.wait_for_selector("#task-detail tr:has-text('already claimed')", timeout=WAIT_MS)
        text = await row.inner_text()  # type: ignore[union-attr]
        assert "task TC-FLOW-001 is already claimed by architect" in text and "claimed" in text, text
        await page.click("a[href='#TC-FLOW-002']")
        await page.wait_for_selector("tr[data-id=tree-TC-FLOW-002]", timeout=WAIT_MS)


async def test_with_read_auth_token_the_page_asks_for_a_token_and_shows_nothing_before_it(
    client: EventClient, gateway: str, nats_url: str, settings: Settings
) -> None:
    await script_fleet(client, gateway, nats_url)
    settings.read_auth = "token"  # the gateway holds this object and reads the policy per request
    async with browser() as chromium:
        context = await chromium.new_context(viewport=DESKTOP)  # type: ignore[attr-defined]
        page, watch = await watched_page(context, gateway)
        await page.goto(f"{gateway}/dashboard/fleet")
        await page.wait_for_selector("#token-form:not(.hidden)", timeout=WAIT_MS)
        assert await page.inner_text("#token-label") == "Read token"
        assert await page.query_selector("tr[data-id=architect]") is None
        await page.fill("#token-input", ADMIN_TOKEN)
        await page.click("#token-form button")
        await page.wait_for_selector("tr[data-id=architect]", timeout=WAIT_MS)
        assert await page.is_hidden("#token-form")
        assert ADMIN_TOKEN not in page.url and ADMIN_TOKEN not in await page.evaluate("JSON.stringify(localStorage)")
        await page.close()
    refused = [p for p in watch.problems() if "401" not in p]
    assert refused == [] and any("HTTP 401" in p and "/dashboard/sse" in p for p in watch.problems())
