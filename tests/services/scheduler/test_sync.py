"""Full and diff syncs with the sync token, resyncs, failures: against the seed-like local
backend and against agentledger's own built-in calendar (the `backend` fixture runs both)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from events.calendar import ScheduleSynced, SlotRemoved
from events.core.client import EventClient
from services.scheduler.service import Scheduler
from tests.services.scheduler.harness import CLAW, Clock, new, schedules, settings_for


def scheduler(tmp_path: Path, nats_url: str, url: str, nc: Any) -> Scheduler:
    return new(settings_for(tmp_path, nats_url, url), nc, Clock())


async def test_the_first_sync_is_full_and_holds_every_agent_schedule(tmp_path: Path, nats_url: str, nc: Any,
                                                                      backend: Any) -> None:
    url, _ = backend
    s = scheduler(tmp_path, nats_url, url, nc)
    assert await s.syncer.step() == "full"
    cal = await s.history.catch_up()
    assert schedules(cal) == {"dev": {"1": "not_started"}, "ops": {"2": "not_started"}}
    assert cal.mirror(CLAW).token is not None


async def test_a_diff_adds_updates_and_removes_slots(tmp_path: Path, nats_url: str, nc: Any, backend: Any) -> None:
    url, api = backend
    s = scheduler(tmp_path, nats_url, url, nc)
    await s.syncer.step()
    first = (await s.history.catch_up()).mirror(CLAW)
    added = await api.add("ops", {"scheduled_at": "11:00", "priority": 2})
    await api.update("dev", "1", status="deferred", scheduled_at="09:30")
    await api.remove("ops", "2")
    assert await s.syncer.step() == "diff"
    cal = await s.history.catch_up()
    assert schedules(cal) == {"dev": {"1": "deferred"}, "ops": {added: "not_started"}}
    assert cal.mirror(CLAW).schedules["dev"]["1"].scheduled_at == "09:30"
    assert cal.mirror(CLAW).token != first.token and cal.mirror(CLAW).last_full_at == first.last_full_at


async def test_a_restarted_scheduler_resumes_from_the_recorded_token(tmp_path: Path, nats_url: str, nc: Any,
                                                                     backend: Any) -> None:
    url, api = backend
    await scheduler(tmp_path, nats_url, url, nc).syncer.step()
    added = await api.add("dev", {"scheduled_at": "12:00"})
    again = scheduler(tmp_path, nats_url, url, nc)  # a new process: only the stream remembers
    assert await again.syncer.step() == "diff"
    assert schedules(await again.history.catch_up())["dev"] == {"1": "not_started", added: "not_started"}


async def test_a_token_the_backend_no_longer_knows_is_resynced_in_full(tmp_path: Path, nats_url: str, nc: Any,
                                                                       client: EventClient, backend: Any) -> None:
    url, _ = backend
    s = scheduler(tmp_path, nats_url, url, nc)
    await s.syncer.step()
    await client.publish(CLAW, ScheduleSynced(full=False, token="999999@2000-01-01"))
    assert await s.syncer.step() == "full"
    m = (await s.history.catch_up()).mirror(CLAW)
    assert m.resyncs == 1 and m.token != "999999@2000-01-01"
    assert schedules(await s.history.catch_up()) == {"dev": {"1": "not_started"}, "ops": {"2": "not_started"}}


async def test_a_diff_that_does_not_apply_is_recorded_and_resynced_in_full(tmp_path: Path, nats_url: str, nc: Any,
                                                                           client: EventClient, backend: Any) -> None:
    url, api = backend
    s = scheduler(tmp_path, nats_url, url, nc)
    await s.syncer.step()
    await client.publish("dev", SlotRemoved(claw=CLAW, slot_id="1"))  # the claw's copy drifts
    await api.update("dev", "1", status="deferred")  # an update of a slot the copy lacks
    assert await s.syncer.step() == "full"
    cal = await s.history.catch_up()
    assert cal.mirror(CLAW).resyncs == 1
    assert schedules(cal)["dev"] == {"1": "deferred"}


async def test_backend_errors_are_recorded_and_back_off_without_losing_the_copy(
    tmp_path: Path, nats_url: str, nc: Any, seed_url: str, calendar: Any,
) -> None:
    s = scheduler(tmp_path, nats_url, seed_url, nc)
    await s.syncer.step()
    calendar.fail_next = 2
    assert [await s.syncer.step(), await s.syncer.step()] == ["failed", "failed"]
    assert s.syncer.delay(300.0) == 2.0  # 1 s, then 2 s, ... never more than the interval
    m = (await s.history.catch_up()).mirror(CLAW)
    assert m.last_error is not None and "503" in m.last_error and "database is down" in m.last_error
    assert schedules(s.history.calendar) == {"dev": {"1": "not_started"}, "ops": {"2": "not_started"}}
    assert await s.syncer.step() == "diff" and s.syncer.delay(300.0) == 300.0


async def test_an_unreachable_backend_is_a_recorded_failure_not_a_crash(tmp_path: Path, nats_url: str, nc: Any) -> None:
    s = scheduler(tmp_path, nats_url, "http://127.0.0.1:9", nc)
    assert await s.syncer.step() == "failed"
    m = (await s.history.catch_up()).mirror(CLAW)
    assert m.token is None and "ClientConnectorError" in (m.last_error or "")
