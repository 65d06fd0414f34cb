"""The calendar read model, given events -> expected rows, on an in-memory DuckDB (no server);
any split of the events into batches gives the same tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.calendar import (
    CalendarEvent,
    Resynced,
    ScheduleSynced,
    Slot,
    SlotAdded,
    SlotChanged,
    SlotCreated,
    SlotDeleted,
    SlotRemoved,
    SlotStatusReported,
    SlotUpdated,
    SyncFailed,
    WakeSent,
    WakeSkipped,
)
from events.core.meta import Meta
from projections import calendar
from projections.runtime.store import Store

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
DAY = "2026-12-01"
DUE = "2026-12-01T09:00:00Z"

EVENTS: list[tuple[str, CalendarEvent]] = [
    ("claw1", ScheduleSynced(full=True, token="t1", date=DAY, schedules={
        "dev": [Slot(id=1, scheduled_at="09:00")], "ops": [Slot(id=2, scheduled_at="10:00")]})),
    ("dev", SlotAdded(claw="claw1", slot=Slot(id=3, scheduled_at="11:00", event_data={"k": 1}))),
    ("dev", SlotUpdated(claw="claw1", slot_id="1", patch={"status": "deferred"})),
    ("ops", SlotRemoved(claw="claw1", slot_id="2")),
    ("claw1", ScheduleSynced(full=False, token="t2", changes=3)),
    ("claw1", SyncFailed(error="503 database is down", status=503)),
    ("claw1", Resynced(reason="gone")),
    ("dev", WakeSent(slot_id="1", due_at=DUE, channel="nats", session="agent:dev:hf-wakeup")),
    ("dev", WakeSkipped(slot_id="1", due_at=DUE, reason="agent_busy")),  # a second outcome: ignored
    ("ops", WakeSkipped(slot_id="2", due_at=DUE, reason="unknown_agent")),
    ("dev", SlotCreated(date=DAY, slot=Slot(id=1, scheduled_at="13:00"))),
    ("dev", SlotCreated(date=DAY, slot=Slot(id=2, scheduled_at="14:00"))),
    ("dev", SlotChanged(slot_id="1", patch={"priority": 5})),
    ("dev", SlotStatusReported(status="busy", slot_id="1", slot_status="started", claw="claw1")),
    ("dev", SlotDeleted(slot_id="2")),
]


@pytest.fixture
def store() -> Any:
    s = Store(":memory:", calendar).open()
    yield s
    s.close()


def commit(store: Store, split: int) -> None:
    items = [(Meta(seq=i, subject=f"calendar.{a}.{e.name}", at=T0 + timedelta(seconds=i), stream="CALENDAR"), e)
             for i, (a, e) in enumerate(EVENTS, 1)]
    for chunk in [items[i : i + split] for i in range(0, len(items), split)]:
        store.commit(chunk, [], {"CALENDAR": chunk[-1][0].seq})


def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return store.connection().execute(sql).fetchall()


@pytest.mark.parametrize("split", [1, 2, 5, len(EVENTS)])
def test_slots_wakes_and_sync_status_whatever_the_batches(store: Store, split: int) -> None:
    commit(store, split)
    assert rows(store, "SELECT source, agent_id, date, slot_id, scheduled_at, status, priority, event_data "
                       "FROM calendar_slots ORDER BY source, agent_id, slot_id") == [
        ("calendar", "dev", DAY, "1", "13:00", "started", 5, None),
        ("claw:claw1", "dev", DAY, "1", "09:00", "deferred", 0, None),
        ("claw:claw1", "dev", DAY, "3", "11:00", "not_started", 0, '{"k": 1}'),
    ]
    assert rows(store, "SELECT agent_id, slot_id, outcome, reason, session FROM calendar_wakes ORDER BY agent_id") == [
        ("dev", "1", "woken", None, "agent:dev:hf-wakeup"), ("ops", "2", "skipped", "unknown_agent", None)]
    assert rows(store, "SELECT claw, token, date, last_error, last_error_status, resyncs, last_resync_reason "
                       "FROM calendar_sync") == [("claw1", None, DAY, "503 database is down", 503, 1, "gone")]


def test_a_full_sync_replaces_the_claws_whole_copy(store: Store) -> None:
    commit(store, 3)
    again = ScheduleSynced(full=True, token="t3", date=DAY, schedules={"qa": [Slot(id=9, scheduled_at="15:00")]})
    store.commit([(Meta(seq=100, subject="calendar.claw1.synced", at=T0, stream="CALENDAR"), again)], [],
                 {"CALENDAR": 100})
    assert rows(store, "SELECT agent_id, slot_id FROM calendar_slots WHERE source = 'claw:claw1'") == [("qa", "9")]
