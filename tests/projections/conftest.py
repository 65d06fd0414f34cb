"""A projector host on the test's own NATS account and temp folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from events.core.client import EventClient
from projections.runtime.protocol import QueryClient
from services.projector.service import ProjectorHost
from services.settings import Settings
from tests.hosting import running


@pytest.fixture
def settings(tmp_path: Path, nats_url: str) -> Settings:
    return Settings(home=str(tmp_path), nats_url=nats_url, batch_ms=20, snapshot_interval_s=0.3)


@pytest.fixture
async def host(settings: Settings, host_nc: NATS) -> AsyncIterator[ProjectorHost]:
    async with running(ProjectorHost(settings, host_nc)) as h:
        yield h


@pytest.fixture
def queries(client: EventClient, settings: Settings) -> QueryClient:
    return QueryClient(client.nc, settings.projector_name)
