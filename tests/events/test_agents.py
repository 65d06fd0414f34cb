"""The agents decider: one given/when/then test per rule, no server, no mock.

`given(events)` folds past events with `evolve` (each one minute after the previous), `when(cmd)`
runs `decide` on that state, `then(events)` / `then_raises(error)` check the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from events.agents import (
    CLASS_DEFAULTS,
    Agent,
    AgentCommand,
    AgentCooldownEnded,
    AgentCooldownStarted,
    AgentEvent,
    AgentHeartbeat,
    AgentRegistered,
    AgentRuleError,
    AgentStatusChanged,
    AgentUpdated,
    AgentWoken,
    AlreadyRegistered,
    ChangeStatus,
    EndCooldown,
    NotRegistered,
    RecordWake,
    Register,
    ReportHeartbeat,
    StartCooldown,
    Update,
    decide,
    evolve,
    initial_state,
)

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
AGENT = "architect"


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


@dataclass
class Given:
    state: Agent
    reasons: list[str | None] = field(default_factory=list)
    now: datetime = T0

    def when(self, cmd: AgentCommand) -> When:
        return When(self, cmd)

    def then_state(self, **expected: object) -> None:
        actual = {k: getattr(self.state, k) for k in expected}
        assert actual == expected

    def then_noop(self, reason: str) -> None:
        assert self.reasons[-1] is not None and reason in self.reasons[-1]


@dataclass
class When:
    given: Given
    cmd: AgentCommand

    def then(self, *events: AgentEvent) -> None:
        assert decide(self.cmd, self.given.state, self.given.now) == list(events)

    def then_raises(self, error: type[AgentRuleError], match: str) -> None:
        with pytest.raises(error, match=match):
            decide(self.cmd, self.given.state, self.given.now)


def given(*events: AgentEvent, agent_id: str = AGENT) -> Given:
    state, reasons = initial_state(agent_id), []
    for i, event in enumerate(events):
        state, reason = evolve(state, event, at(i))
        reasons.append(reason)
    return Given(state, reasons, at(len(events)))


def fold(events: Sequence[AgentEvent]) -> Agent:
    return given(*events).state


REGISTERED = AgentRegistered(display_name="Architect", agent_class="dev")


# --- decide: registration ---------------------------------------------------------------------


def test_an_unknown_agent_can_register() -> None:
    given().when(Register(event=REGISTERED)).then(REGISTERED)


def test_an_agent_known_only_by_heartbeats_can_still_register() -> None:
    given(AgentHeartbeat(status="idle")).when(Register(event=REGISTERED)).then(REGISTERED)


def test_a_registered_agent_cannot_register_again() -> None:
    given(REGISTERED).when(Register(event=REGISTERED)).then_raises(
        AlreadyRegistered, "agent architect is already registered"
    )


# --- decide: updates --------------------------------------------------------------------------


def test_an_unregistered_agent_cannot_be_updated() -> None:
    given().when(Update(event=AgentUpdated(max_rounds=10))).then_raises(
        NotRegistered, "agent architect is not registered"
    )


def test_an_update_that_changes_a_field_is_recorded() -> None:
    update = AgentUpdated(max_rounds=10)
    given(REGISTERED).when(Update(event=update)).then(update)


def test_an_update_that_repeats_the_current_values_records_nothing() -> None:
    given(REGISTERED).when(
        Update(event=AgentUpdated(display_name="Architect", agent_class="dev"))
    ).then()


def test_an_update_that_names_no_field_records_nothing() -> None:
    given(REGISTERED).when(Update(event=AgentUpdated())).then()


# --- decide: heartbeats and status ------------------------------------------------------------


def test_a_first_heartbeat_is_recorded_without_a_status_change() -> None:
    hb = AgentHeartbeat(status="busy", current_task="TC-FLOW-001", round=3)
    given().when(ReportHeartbeat(event=hb)).then(hb)


def test_a_heartbeat_with_the_same_status_is_only_a_heartbeat() -> None:
    hb = AgentHeartbeat(status="busy", round=4)
    given(AgentHeartbeat(status="busy", round=3)).when(ReportHeartbeat(event=hb)).then(hb)


def test_a_heartbeat_with_a_new_status_also_records_the_status_change() -> None:
    hb = AgentHeartbeat(status="idle")
    given(AgentHeartbeat(status="busy")).when(ReportHeartbeat(event=hb)).then(
        AgentStatusChanged(status="idle", previous="busy", reason="heartbeat"), hb
    )


def test_changing_to_a_new_status_records_it_with_the_previous_one() -> None:
    given(AgentHeartbeat(status="busy")).when(
        ChangeStatus(status="exhausted", reason="429 storm")
    ).then(AgentStatusChanged(status="exhausted", previous="busy", reason="429 storm"))


def test_changing_to_the_current_status_records_nothing() -> None:
    given(AgentHeartbeat(status="offline")).when(ChangeStatus(status="offline")).then()


def test_a_status_can_be_set_for_an_agent_never_heard_of() -> None:
    given().when(ChangeStatus(status="offline")).then(
        AgentStatusChanged(status="offline", previous=None)
    )


# --- the registration event itself ------------------------------------------------------------


@pytest.mark.parametrize("cls", sorted(CLASS_DEFAULTS))
def test_registration_carries_the_class_defaults(cls: str) -> None:
    event = AgentRegistered(agent_class=cls)  # type: ignore[arg-type]
    assert (
        event.heartbeat_interval_s,
        event.stall_warning_s,
        event.recovery_s,
        event.max_rounds,
        event.dependency_wait_s,
    ) == tuple(CLASS_DEFAULTS[cls])


def test_an_explicit_setting_in_the_registration_wins_over_the_class_default() -> None:
    assert AgentRegistered(agent_class="business", max_rounds=7).max_rounds == 7


def test_an_agent_registers_as_dev_unless_told_otherwise() -> None:
    assert AgentRegistered().agent_class == "dev"


# --- evolve -----------------------------------------------------------------------------------


def test_registering_records_the_configuration_and_the_time() -> None:
    given(REGISTERED).then_state(
        registered=True,
        registered_at=at(0),
        display_name="Architect",
        agent_class="dev",
        max_rounds=CLASS_DEFAULTS["dev"].max_rounds,
    )


def test_a_second_registration_changes_nothing_and_says_why() -> None:
    g = given(REGISTERED, AgentRegistered(display_name="Other"))
    g.then_state(display_name="Architect", registered_at=at(0))
    g.then_noop("already registered")


def test_an_update_before_registration_changes_nothing_and_says_why() -> None:
    g = given(AgentUpdated(display_name="x"))
    g.then_state(registered=False, display_name=None)
    g.then_noop("not registered")


def test_an_update_changes_only_the_fields_it_names() -> None:
    given(REGISTERED, AgentUpdated(max_rounds=10)).then_state(
        max_rounds=10,
        display_name="Architect",
        heartbeat_interval_s=CLASS_DEFAULTS["dev"].heartbeat_interval_s,
    )


def test_a_heartbeat_makes_an_unregistered_agent_known() -> None:
    g = given(AgentHeartbeat(status="busy", current_task="TC-FLOW-001", round=3))
    g.then_state(
        registered=False,
        agent_class=None,
        status="busy",
        current_task="TC-FLOW-001",
        round=3,
        last_heartbeat_at=at(0),
        heartbeats=1,
    )
    assert g.reasons == [None]


def test_a_heartbeat_replaces_task_round_and_note_with_what_it_says() -> None:
    given(
        AgentHeartbeat(status="busy", current_task="T1", round=3, note="x"),
        AgentHeartbeat(status="busy"),
    ).then_state(current_task=None, round=None, note=None, heartbeats=2, last_heartbeat_at=at(1))


def test_the_status_since_time_stays_while_heartbeats_repeat_the_status() -> None:
    given(AgentHeartbeat(status="busy"), AgentHeartbeat(status="busy")).then_state(
        status_since=at(0)
    )


def test_the_status_since_time_moves_when_a_heartbeat_changes_the_status() -> None:
    given(AgentHeartbeat(status="busy"), AgentHeartbeat(status="idle")).then_state(
        status="idle", status_since=at(1)
    )


def test_a_status_change_moves_the_status_and_its_time() -> None:
    given(AgentHeartbeat(status="busy"), AgentStatusChanged(status="exhausted")).then_state(
        status="exhausted", status_since=at(1), heartbeats=1
    )


def test_a_repeated_status_change_is_a_noop_with_its_reason() -> None:
    g = given(AgentHeartbeat(status="idle"), AgentStatusChanged(status="idle"))
    g.then_state(status_since=at(0))
    g.then_noop("already idle")


def test_evolve_never_mutates_the_state_it_is_given() -> None:
    before = fold([REGISTERED])
    after, _ = evolve(before, AgentHeartbeat(status="busy"), at(5))
    assert before.status is None and after.status == "busy"


def test_events_decided_from_a_heartbeat_fold_without_a_noop() -> None:
    g = given(AgentHeartbeat(status="busy"))
    events = decide(ReportHeartbeat(event=AgentHeartbeat(status="idle")), g.state, g.now)
    state = g.state
    for e in events:
        state, reason = evolve(state, e, g.now)
        assert reason is None, reason
    assert state.status == "idle" and state.heartbeats == 2


# --- cooldowns and wakes (the dispatcher's decisions) -----------------------------------------


def test_a_429_starts_a_cooldown() -> None:
    given(REGISTERED).when(StartCooldown(until=at(10), reason="api_error", task_id="T1")).then(
        AgentCooldownStarted(until=at(10), reason="api_error", task_id="T1")
    )


def test_a_cooldown_is_never_shortened() -> None:
    g = given(AgentCooldownStarted(until=at(30), reason="api_error"))
    g.when(StartCooldown(until=at(20), reason="api_error")).then()
    g.when(StartCooldown(until=at(40), reason="api_error")).then(
        AgentCooldownStarted(until=at(40), reason="api_error")
    )


def test_a_shorter_cooldown_that_raced_in_is_a_noop_with_its_reason() -> None:
    g = given(
        AgentCooldownStarted(until=at(30), reason="api_error"),
        AgentCooldownStarted(until=at(20), reason="api_error"),
    )
    g.then_state(cooldown_until=at(30))
    g.then_noop("already cooling down")


def test_only_an_active_cooldown_can_end() -> None:
    given(REGISTERED).when(EndCooldown(reason="expired")).then()
    g = given(AgentCooldownStarted(until=at(30), reason="api_error"))
    g.when(EndCooldown(reason="expired")).then(AgentCooldownEnded(reason="expired"))
    ended = given(AgentCooldownStarted(until=at(30), reason="api_error"), AgentCooldownEnded())
    ended.then_state(cooldown_until=None)
    again = given(AgentCooldownStarted(until=at(30), reason="api_error"), AgentCooldownEnded(), AgentCooldownEnded())
    again.then_noop("not cooling down")


def test_a_wake_is_recorded_with_its_time() -> None:
    woken = AgentWoken(via="command", task_id="T1", session_id="s1")
    given(REGISTERED).when(RecordWake(event=woken)).then(woken)
    given(REGISTERED, woken).then_state(last_woken_at=at(1))
