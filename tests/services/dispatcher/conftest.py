"""The `stack` fixture: the real tasks service on a test account, and a dispatcher beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from events.core.client import EventClient
from services.dispatcher.loop import Dispatcher
from tests.hosting import in_task
from tests.services.dispatcher.stack import Stack, settings_for


@pytest.fixture
async def stack(tmp_path: Path, nats_url: str, client: EventClient) -> AsyncIterator[Stack]:
    from services.tasks import service as tasks_service

    settings = settings_for(tmp_path, nats_url)
    async with in_task(lambda task_status: tasks_service.serve(settings, task_status=task_status)):
        nc = await nats.connect(nats_url)
        try:
            yield Stack(settings, nc, Dispatcher(settings, nc), client, tmp_path / "agent-state")
        finally:
            await nc.close()
