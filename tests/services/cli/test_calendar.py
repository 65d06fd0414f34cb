"""`agentledger serve scheduler` killed with SIGKILL and restarted across a slot's due time, then
`agentledger calendar day`: the console script in separate processes, a seed-like calendar
backend, the projector in the test, real time (the slot is due a few seconds from now)."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats

from events.agents import AgentHeartbeat
from events.calendar import WAKE_MESSAGE
from events.core.client import EventClient
from projections.runtime.protocol import QueryClient
from services.projector.service import ProjectorHost
from services.scheduler.history import CalendarLog
from services.settings import Settings
from tests.hosting import running
from tests.polling import eventually
from tests.services.cli.clirun import clean_env, run, script
from tests.services.scheduler.calendar_server import CalendarServer
from tests.services.scheduler.conftest import serving
from tests.services.scheduler.harness import Wakes


async def test_a_scheduler_killed_across_a_due_time_wakes_once_and_the_day_shows_it(
    nats_url: str, tmp_path: Path, client: EventClient,
) -> None:
    due = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    calendar = CalendarServer()
    await calendar.add("dev", {"scheduled_at": due.strftime("%H:%M:%S"), "estimated_duration": 30})
    settings = Settings(home=str(tmp_path / "home"), nats_url=nats_url, batch_ms=20)
    wakes = Wakes()
    nc = await nats.connect(nats_url)
    await nc.subscribe("wake.dev", cb=wakes.on)
    history = CalendarLog(nc)
    async with serving(calendar) as url, running(ProjectorHost(settings, client.nc)):
        await client.publish("dev", AgentHeartbeat(status="idle"))
        queries = QueryClient(client.nc)
        await eventually(lambda: _rows(queries, "agents", "list"), 20, "dev in the agents model")
        env = clean_env(AGENTLEDGER_NATS_URL=nats_url, AGENTLEDGER_HOME=str(tmp_path / "home"),
                        AGENTLEDGER_CALENDAR_URL=url, AGENTLEDGER_CLAW_IDENTIFIER="claw1",
                        AGENTLEDGER_CALENDAR_CHECK_INTERVAL_S="0.2")

        async def start() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(script(), "serve", "scheduler", env=env, cwd=tmp_path,
                                                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)

        async def syncs() -> int:
            return sum(1 for c in calendar.asked)

        first = await start()
        await eventually(lambda: _synced(history), 20, "the first sync recorded")
        assert (await history.catch_up()).outcomes == {}
        first.send_signal(signal.SIGKILL)
        await first.wait()
        await eventually(lambda: datetime.now(UTC) > due + timedelta(seconds=1), 20, "the due time passed")

        second = await start()
        await eventually(lambda: _outcomes(history), 20, "the outcome after the restart")
        second.send_signal(signal.SIGKILL)
        await second.wait()
        third = await start()
        before = await syncs()
        await eventually(lambda: _more(syncs, before), 20, "the third scheduler synced")  # and checked before it
        third.send_signal(signal.SIGTERM)
        assert await third.wait() == 0

        assert list((await history.catch_up()).outcomes.values()) == ["woken"]
        await eventually(lambda: wakes.seen, 10, "the wake")
        assert [(w["session_id"], w["message"]) for w in wakes.seen] == [("agent:dev:hf-wakeup", WAKE_MESSAGE)]

        await eventually(lambda: _rows(queries, "calendar", "wakes"), 20, "the wake in the read model")
        shown = await run("calendar", "day", "--agent", "dev", "--json", env=env, cwd=tmp_path)
        assert shown.code == 0, shown.err
        (row,) = json.loads(shown.out)
        assert (row["slot_id"], row["outcome"], row["status"]) == ("1", "woken", "not_started")
        bad = await run("calendar", "day", "--date", "tomorrow", env=env, cwd=tmp_path)
        assert bad.code == 2 and "--date" in bad.err
    await nc.close()


async def _rows(queries: QueryClient, projection: str, name: str) -> list[dict[str, Any]]:
    return (await queries.query(projection, name)).records()


async def _synced(history: CalendarLog) -> bool:
    return (await history.catch_up()).mirror("claw1").token is not None


async def _outcomes(history: CalendarLog) -> bool:
    return bool((await history.catch_up()).outcomes)


async def _more(count: Any, before: int) -> bool:
    return await count() > before
