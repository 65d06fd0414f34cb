"""The calendar fold: tokens and schedules from the events, diffs checked before they apply."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.calendar import (
    BadDiff,
    Calendar,
    Resynced,
    ScheduleSynced,
    Slot,
    SlotChanged,
    SlotCreated,
    SlotDeleted,
    SlotStatusReported,
    SyncFailed,
    WakeSent,
    WakeSkipped,
    diff_events,
)

T = datetime(2026, 12, 1, 9, tzinfo=UTC)
S1 = Slot(id=1, scheduled_at="09:00")
S2 = Slot(id=2, scheduled_at="10:00", priority=3)


def folded(*steps: tuple[str, object]) -> Calendar:
    cal = Calendar()
    for seq, (agg, event) in enumerate(steps, 1):
        assert cal.apply(agg, event, T, seq) is None  # type: ignore[arg-type]
    return cal


FULL = ("claw1", ScheduleSynced(full=True, token="t1", date="2026-12-01", schedules={"dev": [S1], "ops": [S2]}))


def test_a_full_sync_holds_the_token_the_date_and_every_agent_schedule() -> None:
    m = folded(FULL).mirror("claw1")
    assert (m.token, m.date, m.last_full_at) == ("t1", "2026-12-01", T)
    assert m.schedules == {"dev": {"1": S1}, "ops": {"2": S2}}


def test_a_diff_adds_updates_and_removes_slots_and_moves_the_token() -> None:
    cal = folded(FULL)
    diff = [
        {"op": "add", "agent": "dev", "slot": {"id": 3, "scheduled_at": "11:00"}},
        {"op": "update", "agent": "dev", "slotId": 1, "patch": {"status": "deferred", "scheduled_at": "09:30"}},
        {"op": "remove", "agent": "ops", "slotId": 2},
    ]
    steps = [*diff_events("claw1", cal.mirror("claw1"), diff), ("claw1", ScheduleSynced(full=False, token="t2", changes=3))]
    for seq, (agg, e) in enumerate(steps, 10):
        assert cal.apply(agg, e, T, seq) is None
    m = cal.mirror("claw1")
    assert m.token == "t2" and m.date == "2026-12-01"
    assert {a: sorted(s) for a, s in m.schedules.items()} == {"dev": ["1", "3"], "ops": []}
    assert (m.schedules["dev"]["1"].status, m.schedules["dev"]["1"].scheduled_at) == ("deferred", "09:30")


@pytest.mark.parametrize("op", [
    {"op": "update", "agent": "dev", "slotId": 9, "patch": {"status": "deferred"}},
    {"op": "remove", "agent": "dev", "slotId": 9},
    {"op": "rename", "agent": "dev", "slotId": 1},
    {"op": "add", "agent": "dev.x", "slot": {"id": 4, "scheduled_at": "11:00"}},
    {"op": "add", "agent": "dev", "slot": {"id": 4}},
    {"op": "update", "agent": "dev", "slotId": 1, "patch": {"priority": "high"}},
])
def test_a_diff_that_does_not_apply_is_refused_whole(op: dict[str, object]) -> None:
    with pytest.raises(BadDiff, match=r"diff\[0\]"):
        diff_events("claw1", folded(FULL).mirror("claw1"), [op])


def test_a_resync_forgets_the_token_and_a_failure_is_kept_as_the_last_error() -> None:
    m = folded(FULL, ("claw1", SyncFailed(error="timeout", status=None)), ("claw1", Resynced(reason="gone"))).mirror("claw1")
    assert (m.token, m.last_error, m.resyncs) == (None, "timeout", 1)


def test_a_slot_has_one_outcome_a_second_is_a_noop() -> None:
    cal = folded(("dev", WakeSent(slot_id="1", due_at="2026-12-01T09:00:00Z", channel="nats", session="agent:dev:hf-wakeup")))
    again = WakeSkipped(slot_id="1", due_at="2026-12-01T09:00:00Z", reason="agent_busy")
    assert "has an outcome already" in (cal.apply("dev", again, T, 2) or "")
    assert cal.outcomes == {("dev", "1", "2026-12-01T09:00:00Z"): "woken"}


def test_the_built_in_calendar_numbers_slots_and_logs_its_changes_for_diffs() -> None:
    cal = folded(
        ("dev", SlotCreated(date="2026-12-01", slot=Slot(id=1, scheduled_at="09:00"))),
        ("dev", SlotCreated(date="2026-12-02", slot=Slot(id=2, scheduled_at="09:00"))),
        ("dev", SlotChanged(slot_id="1", patch={"priority": 4})),
        ("dev", SlotStatusReported(status="busy", slot_id="1", slot_status="started")),
        ("dev", SlotDeleted(slot_id="2")),
    )
    assert cal.created == 2
    assert cal.day("2026-12-01") == {"dev": [Slot(id=1, scheduled_at="09:00", priority=4, status="started")]}
    assert [(c.seq, c.op) for c in cal.changes_since(1, "2026-12-01", "claw1")] == [(3, "update"), (4, "update")]
    assert cal.agent_status == {"dev": "busy"}
