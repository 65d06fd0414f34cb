"""Scheduler test harness: settings for a claw, a clock the test moves, the wakes it saw."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from events.calendar import Calendar
from services.scheduler.service import Scheduler
from services.settings import Settings
from tests.services.gateway.admin_auth import ADMIN_TOKEN

CLAW = "claw1"


def settings_for(tmp_path: Path, nats_url: str, calendar_url: str, **more: Any) -> Settings:
    return Settings(**{
        "home": str(tmp_path), "nats_url": nats_url, "calendar_url": calendar_url,
        "claw_identifier": CLAW, "batch_ms": 20, "calendar_check_interval_s": 0.1,
        "calendar_sync_interval_s": 3600.0, "calendar_heartbeat_interval_s": 3600.0,
        "dispatch_mode": "nats", "calendar_token": ADMIN_TOKEN, **more,
    })


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def to(self, h: int, m: int = 0) -> None:
        self.now = self.now.replace(hour=h, minute=m)

    def add(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@dataclass
class Wakes:
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def on(self, msg: Any) -> None:
        self.seen.append(msgspec.json.decode(msg.data))


def schedules(cal: Calendar) -> dict[str, dict[str, str]]:
    """The claw's synced copy as {agent: {slot: status}}."""
    return {a: {k: s.status for k, s in slots.items()} for a, slots in cal.mirror(CLAW).schedules.items()}


def outcomes(cal: Calendar) -> dict[tuple[str, str, str], str]:
    return dict(cal.outcomes)


OPEN: list[Scheduler] = []  # closed after each test (tests/services/scheduler/conftest.py)


def new(settings: Settings, nc: Any, clock: Clock | None = None) -> Scheduler:
    """A scheduler whose HTTP session the test's teardown closes."""
    OPEN.append(Scheduler(settings, nc, clock=clock))
    return OPEN[-1]
