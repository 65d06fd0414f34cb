"""The due-slot decision, one rule per test (events/calendar/due.py)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from events.calendar import AgentView, resolve
from tests.events.calendar.given import IDLE, given, slot, utc

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_slot_is_not_due_before_its_time() -> None:
    g = given(dev=[slot("09:30")]).with_agents(dev=IDLE)
    assert g.woken_at(utc(9, 29, 59)) == []


def test_a_slot_is_due_at_its_time_and_an_idle_agent_is_woken() -> None:
    g = given(dev=[slot("09:30")]).with_agents(dev=IDLE)
    assert g.woken_at(utc(9, 30)) == [("dev", ["1"])]


def test_seconds_count_in_hh_mm_ss() -> None:
    g = given(dev=[slot("09:30:30")]).with_agents(dev=IDLE)
    assert g.woken_at(utc(9, 30, 29)) == []
    assert g.woken_at(utc(9, 30, 30)) == [("dev", ["1"])]


def test_an_iso_time_with_an_offset_is_taken_as_it_is() -> None:
    g = given(dev=[slot("2026-12-01T10:00:00+01:00")]).with_agents(dev=IDLE)
    assert g.woken_at(utc(8, 59)) == []
    assert g.woken_at(utc(9, 0)) == [("dev", ["1"])]


def test_an_iso_time_without_offset_is_in_the_calendar_zone() -> None:
    g = given(dev=[slot("2026-12-01T17:00:00")]).with_agents(dev=IDLE).in_zone(SHANGHAI)
    assert g.woken_at(utc(8, 59)) == []
    assert g.woken_at(utc(9, 0)) == [("dev", ["1"])]


def test_hh_mm_is_on_the_schedule_date_in_the_calendar_zone() -> None:
    # 09:00 in Shanghai on 2026-12-01 is 01:00 UTC
    g = given(dev=[slot("09:00")]).with_agents(dev=IDLE).in_zone(SHANGHAI)
    assert g.woken_at(utc(0, 59)) == []
    assert g.woken_at(utc(1, 0)) == [("dev", ["1"])]


def test_a_schedule_of_another_day_is_not_looked_at_after_the_date_changed() -> None:
    g = given(dev=[slot("23:50", estimated_duration=120)]).with_agents(dev=IDLE)
    assert g.woken_at(utc(23, 55)) == [("dev", ["1"])]
    assert g.at(utc(0, 5, day=2)) == []


def test_the_date_changes_at_midnight_of_the_calendar_zone_not_utc() -> None:
    # 2026-12-01 in Shanghai ends at 16:00 UTC
    g = given(dev=[slot("23:00", estimated_duration=120)]).with_agents(dev=IDLE).in_zone(SHANGHAI)
    assert g.woken_at(utc(15, 30)) == [("dev", ["1"])]
    assert g.at(utc(16, 0)) == []


def test_only_not_started_and_deferred_slots_are_due() -> None:
    g = given(dev=[
        slot("09:00", 1), slot("09:00", 2, status="deferred"), slot("09:00", 3, status="started"),
        slot("09:00", 4, status="completed"), slot("09:00", 5, status="skipped"),
    ]).with_agents(dev=IDLE)
    assert g.woken_at(utc(9, 1)) == [("dev", ["1", "2"])]


def test_due_slots_of_one_agent_go_in_one_wake_highest_priority_first() -> None:
    g = given(dev=[slot("08:00", 1, priority=1, estimated_duration=90),
                   slot("09:00", 2, priority=5), slot("08:30", 3, priority=5, estimated_duration=60)])
    assert g.with_agents(dev=IDLE).woken_at(utc(9, 1)) == [("dev", ["3", "2", "1"])]


def test_a_busy_agent_is_not_woken_and_each_due_slot_is_skipped_with_the_reason() -> None:
    g = given(dev=[slot("09:00")]).with_agents(dev=AgentView("busy"))
    assert g.skipped_at(utc(9, 1)) == [("dev", ["1"], "agent_busy")]
    assert g.woken_at(utc(9, 1)) == []


def test_an_agent_nobody_knows_is_skipped_as_unknown() -> None:
    assert given(ghost=[slot("09:00")]).skipped_at(utc(9, 1)) == [("ghost", ["1"], "unknown_agent")]


def test_an_agent_cooling_down_is_skipped_until_its_cooldown_ends() -> None:
    g = given(dev=[slot("09:00", estimated_duration=60)]).with_agents(dev=AgentView("idle", utc(9, 10)))
    assert g.skipped_at(utc(9, 1)) == [("dev", ["1"], "cooling_down")]
    assert g.woken_at(utc(9, 10)) == [("dev", ["1"])]


def test_a_slot_whose_window_closed_is_skipped_as_outside_its_window() -> None:
    g = given(dev=[slot("09:00", estimated_duration=30)]).with_agents(dev=IDLE)
    assert g.woken_at(utc(9, 29)) == [("dev", ["1"])]
    assert g.skipped_at(utc(9, 30)) == [("dev", ["1"], "outside_window")]


def test_a_short_slot_still_has_the_minimum_window() -> None:
    g = given(dev=[slot("09:00", estimated_duration=1)]).with_agents(dev=IDLE)
    assert g.woken_at(utc(9, 14)) == [("dev", ["1"])]


def test_a_slot_with_an_outcome_is_not_decided_again() -> None:
    g = given(dev=[slot("09:00")]).with_agents(dev=IDLE).with_outcome("dev", "1", "2026-12-01T09:00:00Z")
    assert g.at(utc(9, 1)) == []


def test_a_deferred_slot_with_a_new_time_is_a_new_decision() -> None:
    g = given(dev=[slot("09:30", status="deferred")]).with_agents(dev=IDLE)
    g.with_outcome("dev", "1", "2026-12-01T09:00:00Z")
    assert g.woken_at(utc(9, 30)) == [("dev", ["1"])]


def test_a_missed_slot_and_a_live_one_are_two_decisions() -> None:
    g = given(dev=[slot("07:00", 1), slot("09:00", 2)]).with_agents(dev=IDLE)
    assert g.skipped_at(utc(9, 1)) == [("dev", ["1"], "outside_window")]
    assert g.woken_at(utc(9, 1)) == [("dev", ["2"])]


def test_a_time_in_neither_form_is_never_due() -> None:
    assert resolve("soon", "2026-12-01", SHANGHAI) is None
    assert resolve("25:00", "2026-12-01", SHANGHAI) is None
    assert given(dev=[slot("9h")]).with_agents(dev=IDLE).at(utc(23, 0)) == []
