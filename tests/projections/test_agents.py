"""The agents read model, given events -> expected rows, on an in-memory DuckDB (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.agents import (
    AgentCooldownEnded,
    AgentCooldownStarted,
    AgentEvent,
    AgentHeartbeat,
    AgentRegistered,
    AgentStatusChanged,
    AgentUpdated,
    AgentWoken,
)
from events.core.meta import Meta
from projections import agents
from projections.runtime.store import Store

T0 = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)


class Given:
    """Events for one or more agents, numbered like a stream, `s` seconds after T0."""

    def __init__(self) -> None:
        self.seq = 0
        self.items: list[tuple[Meta, AgentEvent]] = []

    def __call__(self, agent: str, event: AgentEvent, s: float = 0) -> Given:
        self.seq += 1
        subject = f"agents.{agent}.{event.name}"
        self.items.append((Meta(seq=self.seq, subject=subject, at=T0 + timedelta(seconds=s), stream="AGENTS"), event))
        return self


@pytest.fixture
def store() -> Store:
    s = Store(":memory:", agents).open()
    yield s
    s.close()


def rows(store: Store, sql: str) -> list[dict[str, Any]]:
    return store.connection().sql(sql).to_arrow_table().to_pylist()


def apply(store: Store, given: Given, *, split: int | None = None) -> None:
    items = given.items
    chunks = [items] if split is None else [items[i : i + split] for i in range(0, len(items), split)]
    for chunk in chunks:
        store.commit(chunk, [], {"AGENTS": chunk[-1][0].seq})


def test_a_heartbeat_of_an_unknown_agent_makes_it_known(store: Store) -> None:
    apply(store, Given()("architect", AgentHeartbeat(status="busy", current_task="T1", round=3, note="x"), s=1))
    (row,) = rows(store, "SELECT * FROM agents")
    assert row["id"] == "architect" and row["registered"] is False and row["class"] is None
    assert row["status"] == "busy" and row["current_task"] == "T1" and row["round"] == 3
    assert row["last_heartbeat_at"] == T0 + timedelta(seconds=1)
    assert row["status_since"] == T0 + timedelta(seconds=1)
    assert row["heartbeats"] == 1 and row["last_seq"] == 1


def test_registration_writes_the_class_defaults(store: Store) -> None:
    apply(store, Given()("coo", AgentRegistered(display_name="COO", agent_class="high_frequency", claw_id="c1")))
    (row,) = rows(store, "SELECT * FROM agents")
    assert row["registered"] is True and row["registered_at"] == T0
    assert (row["class"], row["display_name"], row["claw_id"]) == ("high_frequency", "COO", "c1")
    assert (row["heartbeat_interval_s"], row["stall_warning_s"], row["recovery_s"],
            row["max_rounds"], row["dependency_wait_s"]) == (600, 1200, 1800, 50, 3600)
    assert row["heartbeats"] == 0 and row["status"] is None


def test_a_second_registration_is_a_recorded_noop(store: Store) -> None:
    given = Given()("coo", AgentRegistered(display_name="first"))("coo", AgentRegistered(display_name="second"), s=2)
    apply(store, given)
    assert rows(store, "SELECT display_name FROM agents") == [{"display_name": "first"}]
    (noop,) = rows(store, "SELECT * FROM agent_noops")
    assert noop["seq"] == 2 and noop["event"] == "registered" and "already registered" in noop["reason"]
    assert rows(store, "SELECT last_seq FROM agents") == [{"last_seq": 2}]


def test_an_update_changes_only_the_fields_it_names(store: Store) -> None:
    given = Given()("qa", AgentRegistered(agent_class="dev", display_name="QA"))("qa", AgentUpdated(max_rounds=7))
    apply(store, given)
    (row,) = rows(store, "SELECT * FROM agents")
    assert (row["display_name"], row["class"], row["max_rounds"], row["recovery_s"]) == ("QA", "dev", 7, 2700)


def test_status_since_moves_only_when_the_status_changes(store: Store) -> None:
    given = (Given()("a", AgentHeartbeat(status="idle"), s=0)("a", AgentHeartbeat(status="idle"), s=10)
             ("a", AgentHeartbeat(status="busy"), s=20)("a", AgentStatusChanged(status="busy"), s=30))
    apply(store, given)
    (row,) = rows(store, "SELECT * FROM agents")
    assert row["status_since"] == T0 + timedelta(seconds=20)
    assert row["heartbeats"] == 3 and row["last_seq"] == 4
    assert [n["seq"] for n in rows(store, "SELECT seq FROM agent_noops")] == [4]


def test_heartbeats_are_counted_per_agent_and_minute(store: Store) -> None:
    given = (Given()("a", AgentHeartbeat(status="idle"), s=0)("b", AgentHeartbeat(status="busy"), s=1)
             ("a", AgentHeartbeat(status="busy"), s=50)("a", AgentHeartbeat(status="offline"), s=70))
    apply(store, given, split=2)
    got = rows(store, "SELECT * FROM agent_heartbeats ORDER BY agent_id, minute")
    minute = T0.replace(second=0)
    assert got == [
        {"agent_id": "a", "minute": minute, "heartbeats": 2, "last_status": "busy"},
        {"agent_id": "a", "minute": minute + timedelta(minutes=1), "heartbeats": 1, "last_status": "offline"},
        {"agent_id": "b", "minute": minute, "heartbeats": 1, "last_status": "busy"},
    ]


def test_folding_in_several_batches_gives_the_same_rows_as_one(store: Store) -> None:
    given = Given()
    given("a", AgentRegistered(agent_class="business"))
    for i in range(50):
        given(f"x{i % 4}", AgentHeartbeat(status=("idle", "busy")[i % 2], round=i), s=i * 7)
        given("a", AgentHeartbeat(status="busy", round=i), s=i * 7 + 1)
    apply(store, given)
    one = rows(store, "SELECT * FROM agents ORDER BY id"), rows(store, "SELECT * FROM agent_heartbeats ORDER BY ALL")
    other = Store(":memory:", agents).open()
    apply(other, given, split=7)
    many = rows(other, "SELECT * FROM agents ORDER BY id"), rows(other, "SELECT * FROM agent_heartbeats ORDER BY ALL")
    assert one == many
    assert [r["heartbeats"] for r in one[0]] == [50, 13, 13, 12, 12]


def test_named_queries_answer_by_id(store: Store) -> None:
    apply(store, Given()("b", AgentHeartbeat(status="idle"), s=1)("a", AgentHeartbeat(status="idle"), s=2))
    con = store.connection()
    assert [r["id"] for r in con.sql(agents.QUERIES["list"]).to_arrow_table().to_pylist()] == ["a", "b"]
    (got,) = con.sql(agents.QUERIES["get"], params={"id": "b"}).to_arrow_table().to_pylist()
    assert got["id"] == "b"
    ts = con.sql(agents.QUERIES["heartbeat_timestamps"]).fetchall()
    assert ts == [("a", (T0 + timedelta(seconds=2)).timestamp()), ("b", (T0 + timedelta(seconds=1)).timestamp())]


def test_cooldown_and_wake_columns_follow_the_events(store: Store) -> None:
    until = T0 + timedelta(minutes=5)
    g = Given()("a", AgentHeartbeat(status="idle"))("a", AgentWoken(via="command", task_id="T1"), 1)
    g("a", AgentCooldownStarted(until=until, reason="api_error"), 2)
    apply(store, g)
    assert rows(store, "SELECT cooldown_until, last_woken_at FROM agents") == [
        {"cooldown_until": until, "last_woken_at": T0 + timedelta(seconds=1)}
    ]
    g.items.clear()
    apply(store, g("a", AgentCooldownEnded(reason="expired"), 3))
    assert rows(store, "SELECT cooldown_until FROM agents") == [{"cooldown_until": None}]
