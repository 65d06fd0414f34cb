"""The watchdog's harness: the real tasks service on a test account, short class thresholds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest

from events.core.client import EventClient
from services.settings import Settings
from tests.hosting import in_task

# seconds instead of minutes: silence 1 s -> suspected, 3 s -> recovery
SHORT = {"dev": {"stall_warning_s": 1, "recovery_s": 3, "stuck_s": 2, "max_rounds": 10}}


def settings_for(tmp_path: Path, nats_url: str, **more: Any) -> Settings:
    values = {"heartbeat_wakes": False, **more}  # a quarter-hour passing mid-test would add a wake
    return Settings(home=str(tmp_path), nats_url=nats_url, agent_classes=SHORT,
                    watchdog_interval_s=0.1, **values)


@pytest.fixture
def settings(tmp_path: Path, nats_url: str) -> Settings:
    return settings_for(tmp_path, nats_url)


@pytest.fixture
async def tasks_service(settings: Settings, client: EventClient) -> AsyncIterator[Any]:
    from services.tasks import service as tasks_service

    async with in_task(lambda task_status: tasks_service.serve(settings, task_status=task_status)):
        nc = await nats.connect(settings.url)
        yield nc
        await nc.close()
