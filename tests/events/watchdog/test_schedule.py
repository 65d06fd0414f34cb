"""Scheduled heartbeat wakes: the class's cron in the configured zone, woken or skipped once per due time."""

from __future__ import annotations

from datetime import UTC, datetime

from events.agents import AgentCooldownStarted, AgentHeartbeat, AgentRegistered
from events.watchdog.schedule import last_due
from tests.events.watchdog.given import POLICY, at, given

CRON = POLICY._replace(cron=True)


def test_the_last_due_time_is_read_in_the_configured_zone() -> None:
    now = datetime(2026, 11, 21, 9, 16, tzinfo=UTC)  # 17:16 in Shanghai
    assert last_due("*/15 * * * *", now, "Asia/Shanghai").isoformat() == "2026-11-21T17:15:00+08:00"
    assert last_due("0 9 * * *", now, "Asia/Shanghai").isoformat() == "2026-11-21T09:00:00+08:00"
    assert last_due("0 9 * * *", now, "UTC").isoformat() == "2026-11-21T09:00:00+00:00"
    assert last_due("*/15 * * * *", datetime(2026, 11, 21, 9, 15, tzinfo=UTC), "UTC").minute == 15


def test_an_idle_dev_agent_is_woken_once_per_quarter_hour() -> None:
    g = given((1, "agents.architect", AgentRegistered(agent_class="dev")),
              (2, "agents.architect", AgentHeartbeat(status="idle")), policy=CRON)
    g.when(14).then()
    g.when(16).then(("heartbeat_scheduled", "watchdog:heartbeat:architect:1795252500"))
    assert g.events[0].outcome == "woken" and g.events[0].due_at == at(15)
    g.taken(16).when(29).then()
    g.when(31).then(("heartbeat_scheduled", "watchdog:heartbeat:architect:1795253400"))


def test_a_high_frequency_agent_is_woken_every_ten_minutes_and_slots_missed_coalesce() -> None:
    g = given((1, "agents.coo", AgentRegistered(agent_class="high_frequency")), policy=CRON)
    g.when(45).then(("heartbeat_scheduled", "watchdog:heartbeat:coo:1795254000"))


def test_a_heartbeat_never_interrupts_a_conversation_and_skips_are_recorded_with_the_reason() -> None:
    g = given((1, "agents.architect", AgentRegistered(agent_class="dev")),
              (2, "agents.architect", AgentHeartbeat(status="busy")), policy=CRON)
    g.when(16)
    assert [(e.outcome, e.cause) for e in g.events] == [("skipped", "busy in a conversation")]
    g2 = given((1, "agents.coder", AgentRegistered(agent_class="dev")),
               (2, "agents.coder", AgentCooldownStarted(until=at(40), reason="429")), policy=CRON)
    g2.when(16)
    assert g2.events[0].outcome == "skipped" and g2.events[0].cause.startswith("cooling down until")


def test_an_agent_known_only_by_its_heartbeats_has_no_schedule() -> None:
    given((1, "agents.ghost", AgentHeartbeat(status="idle")), policy=CRON).when(16).then()
