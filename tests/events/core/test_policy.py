"""The write policy table: every event declares its writers; checks name the rule they apply."""

from __future__ import annotations

import msgspec
import pytest

import events.catalog  # noqa: F401  (registers every domain)
from events.core.policy import Forbidden, Principal, check, publish_subjects
from events.core.registry import Event, rules


def test_every_registered_event_has_a_rule_with_writers() -> None:
    table = rules()
    assert table and all(r.writers for r in table.values())


def test_an_event_without_writers_cannot_be_declared() -> None:
    with pytest.raises(TypeError, match="declare its writers"):

        class Orphan(Event, frozen=True, kw_only=True):  # type: ignore[misc]
            domain = "runs"
            name = "orphaned"
            x: int = msgspec.field(default=0)


def test_an_agent_writes_facts_about_itself_only() -> None:
    me = Principal("agent", "architect")
    assert check(me, "agents", "architect", "heartbeat", rules()).pattern == "agents.*.heartbeat"
    with pytest.raises(Forbidden, match="agent architect may write only agents.architect.heartbeat"):
        check(me, "agents", "coo", "heartbeat", rules())


def test_state_a_service_decides_is_refused_to_everyone_else_naming_the_rule() -> None:
    with pytest.raises(Forbidden, match=r"providers\.\*\.updated is written only by the gateway: the admin API"):
        check(Principal("agent", "architect"), "providers", "b1", "updated", rules())
    with pytest.raises(Forbidden, match=r"tasks\.\*\.claimed is written only by the tasks service"):
        check(Principal("gateway"), "tasks", "T1", "claimed", rules())
    with pytest.raises(Forbidden, match=r"usage\.\*\.completed"):
        check(Principal("reader"), "usage", "b1", "completed", rules())
    assert check(Principal("tasks"), "tasks", "T1", "claimed", rules())


def test_an_agent_publishes_only_its_own_agent_subjects() -> None:
    subjects = publish_subjects(Principal("agent", "architect"), rules().values())
    assert "agents.architect.heartbeat" in subjects
    assert all(s.startswith("agents.architect.") for s in subjects if s.startswith("agents."))
    assert not any(s.startswith(("tasks.", "providers.", "usage.", "mail.")) for s in subjects)
