"""The dashboard's pages and assets come from the gateway alone, one linkable URL per page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.gateway.app import create_app
from services.gateway.dashboard import PAGES
from services.settings import Settings

Client = TestClient[Any, Any]


@pytest.fixture
async def http(client: Any, nats_url: str, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_app(Settings(nats_url=nats_url, home=str(tmp_path))))


async def test_every_page_has_its_own_url_and_loads_only_same_origin_assets(http: Client) -> None:
    for name in PAGES:
        r = await http.get(f"/dashboard/{name}")
        html = await r.text()
        assert r.status == 200 and f'data-page="{name}"' in html
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert "http://" not in html and "https://" not in html
    for asset in ("dashboard.js", "providers.js", "tasks.js", "reports.js", "runs.js", "dashboard.css"):
        r = await http.get(f"/dashboard/static/{asset}")
        assert r.status == 200 and len(await r.read()) > 500


async def test_the_dashboard_root_opens_the_fleet_and_an_unknown_page_is_404(http: Client) -> None:
    r = await http.get("/dashboard", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/dashboard/fleet"
    r = await http.get("/dashboard/nope")
    assert r.status == 404 and "fleet" in await r.text()
