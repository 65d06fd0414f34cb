"""A headless Debian chromium driven by Playwright, watching everything a page asks for.

Chromium comes from the system (`apt-get install chromium`, done by `.ci/run`): Playwright never
downloads a browser here. Every request to a host other than the gateway is aborted and
recorded, so a CDN script or an external font fails the test instead of loading quietly.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class Watch:
    """What went wrong on one page: console errors, failed or refused requests, foreign hosts."""

    origin: str
    console: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [*self.console, *self.failed, *(f"foreign host: {u}" for u in self.foreign)]


@asynccontextmanager
async def browser() -> AsyncIterator[object]:
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def watched_page(context: object, origin: str) -> tuple[object, Watch]:
    """A page whose every problem lands in the returned Watch."""
    watch = Watch(origin)
    host = urlsplit(origin).netloc

    async def route(r: object) -> None:
        url = r.request.url  # type: ignore[attr-defined]
        if urlsplit(url).netloc != host and not url.startswith("data:"):
            watch.foreign.append(url)
            await r.abort()  # type: ignore[attr-defined]
        else:
            await r.continue_()  # type: ignore[attr-defined]

    page = await context.new_page()  # type: ignore[attr-defined]
    await page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and watch.console.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: watch.console.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: watch.failed.append(f"failed: {r.url} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and watch.failed.append(f"HTTP {r.status}: {r.url}"))
    return page, watch


@asynccontextmanager
async def opened(origin: str, path: str, viewport: dict[str, int]) -> AsyncIterator[Any]:
    """A fresh browser at `origin + path`; whatever went wrong on the page fails the test at the end."""
    async with browser() as chromium:
        context = await chromium.new_context(viewport=viewport)  # type: ignore[attr-defined]
        page, watch = await watched_page(context, origin)
        await page.goto(origin + path)  # type: ignore[attr-defined]
        yield page
        await page.close()  # type: ignore[attr-defined]
    assert watch.problems() == []
