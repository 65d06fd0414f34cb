"""Fixtures every service test may use: the local platform stand-ins of the notifier tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.services.notifier.platforms import Platforms


@dataclass
class Served:
    platforms: Platforms
    base: str
    http: aiohttp.ClientSession


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """The fake platforms on a free local port, and a client session to reach them."""
    platforms = Platforms()
    server = TestServer(platforms.app())
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        yield Served(platforms, str(server.make_url("")).rstrip("/"), http)
    await server.close()
