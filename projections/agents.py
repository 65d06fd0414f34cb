"""The agents read model: who the agents are, what they last reported, and how often.

Every reader folds the AGENTS stream with the same pure `events.agents.evolve`, so this table, the
watchdog's memory and a replay agree event for event, no-ops included.

Tables (timestamps are TIMESTAMPTZ in UTC, all taken from the JetStream time of the event):

`agents`, one row per agent id ever seen on the stream:
- id: the aggregate id from the subject `agents.<id>.<event>`
- display_name, class, claw_id: registry data (`class` is high_frequency | dev | business;
  NULL for an agent only known from its heartbeats)
- registered: whether a `registered` event was seen; registered_at: when
- concurrency_limit, heartbeat_interval_s, stall_warning_s, recovery_s, max_rounds,
  dependency_wait_s: the configuration written into the registration (class defaults included)
  as changed by later `updated` events
- status: idle | busy | offline | exhausted as last reported (heartbeat or status_changed);
  status_since: when the agent entered that status
- last_heartbeat_at: time of the last heartbeat; heartbeats: how many heartbeats so far
- current_task, round, note: as given by the last heartbeat
- last_seq: stream sequence of the last event about this agent (no-ops included)
- cooldown_until: the dispatcher does not wake the agent before this time (after a 429); NULL
  when no cooldown was started or the last one was ended
- last_woken_at: time of the last `woken` event (the dispatcher woke the agent)

`agent_heartbeats`, one row per agent and UTC minute with at least one heartbeat:
- minute: the minute the heartbeats fell in; heartbeats: how many; last_status: status of the
  last one in that minute

`agent_noops`, one row per event that changed nothing (a second registration, a repeated status),
with the reason `evolve` gave, so the no-op is visible rather than silently swallowed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from events.agents import Agent, AgentEvent, AgentHeartbeat, evolve, initial_state
from events.core.meta import Meta
from events.core.streams import stream_name
from events.core.subjects import domain_filter
from projections.runtime.arrow_batches import execute_with, from_columns, from_rows

log = logging.getLogger(__name__)

NAME = "agents"
SOURCES: list[tuple[str, list[str]]] = [(stream_name("agents"), [domain_filter("agents")])]

DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS agents (
        id VARCHAR PRIMARY KEY,            -- aggregate id from the subject
        display_name VARCHAR,              -- registry: human name
        "class" VARCHAR,                   -- registry: high_frequency | dev | business; NULL if unregistered
        claw_id VARCHAR,                   -- registry: claw instance the agent runs in
        status VARCHAR,                    -- idle | busy | offline | exhausted, last reported
        last_heartbeat_at TIMESTAMPTZ,     -- JetStream time of the last heartbeat
        current_task VARCHAR,              -- task named by the last heartbeat
        "round" INTEGER,                   -- round counter of the last heartbeat
        heartbeats BIGINT NOT NULL,        -- heartbeats seen so far
        registered BOOLEAN NOT NULL,       -- a registered event was seen
        registered_at TIMESTAMPTZ,         -- JetStream time of the registration
        concurrency_limit INTEGER,         -- tasks the agent may hold at once
        heartbeat_interval_s INTEGER,      -- expected seconds between heartbeats
        stall_warning_s INTEGER,           -- seconds without progress before a stall warning
        recovery_s INTEGER,                -- seconds without progress before auto-recovery
        max_rounds INTEGER,                -- round limit (warning at 80 %)
        dependency_wait_s INTEGER,         -- seconds waiting on dependencies before a notice
        status_since TIMESTAMPTZ,          -- JetStream time the current status began
        note VARCHAR,                      -- free text of the last heartbeat
        last_seq BIGINT NOT NULL,          -- stream seq of the last event about this agent
        cooldown_until TIMESTAMPTZ,        -- not woken before this time (429 cooldown)
        last_woken_at TIMESTAMPTZ          -- JetStream time of the last woken event
    )""",
    # files created before the cooldown columns existed
    "ALTER TABLE agents ADD COLUMN IF NOT EXISTS cooldown_until TIMESTAMPTZ",
    "ALTER TABLE agents ADD COLUMN IF NOT EXISTS last_woken_at TIMESTAMPTZ",
    """CREATE TABLE IF NOT EXISTS agent_heartbeats (
        agent_id VARCHAR NOT NULL,         -- agents.id
        minute TIMESTAMPTZ NOT NULL,       -- UTC minute the heartbeats fell in
        heartbeats BIGINT NOT NULL,        -- heartbeats in that minute
        last_status VARCHAR,               -- status of the last heartbeat in that minute
        PRIMARY KEY (agent_id, minute)
    )""",
    """CREATE TABLE IF NOT EXISTS agent_noops (
        seq BIGINT PRIMARY KEY,            -- stream seq of the event that changed nothing
        agent_id VARCHAR NOT NULL,         -- agents.id
        event VARCHAR NOT NULL,            -- event name, e.g. registered
        reason VARCHAR NOT NULL,           -- why evolve left the state unchanged
        "at" TIMESTAMPTZ NOT NULL          -- JetStream time of the event
    )""",
]

QUERIES: dict[str, str] = {
    "list": "SELECT * FROM agents ORDER BY id",
    "get": "SELECT * FROM agents WHERE id = $id",
    "health": (
        'SELECT id, display_name, "class", epoch(last_heartbeat_at) AS last_heartbeat_s, '
        "heartbeat_interval_s, stall_warning_s, recovery_s, max_rounds, dependency_wait_s "
        "FROM agents ORDER BY id"
    ),
    "heartbeat_timestamps": (
        "SELECT id, epoch(last_heartbeat_at) AS last_heartbeat_s FROM agents "
        "WHERE last_heartbeat_at IS NOT NULL ORDER BY id"
    ),
}

# Column name -> Agent field, in table order.
_COLUMNS: dict[str, str] = {
    "id": "id", "display_name": "display_name", "class": "agent_class", "claw_id": "claw_id",
    "status": "status", "last_heartbeat_at": "last_heartbeat_at", "current_task": "current_task",
    "round": "round", "heartbeats": "heartbeats", "registered": "registered",
    "registered_at": "registered_at", "concurrency_limit": "concurrency_limit",
    "heartbeat_interval_s": "heartbeat_interval_s", "stall_warning_s": "stall_warning_s",
    "recovery_s": "recovery_s", "max_rounds": "max_rounds", "dependency_wait_s": "dependency_wait_s",
    "status_since": "status_since", "note": "note", "cooldown_until": "cooldown_until",
    "last_woken_at": "last_woken_at",
}
_TS = pa.timestamp("us", tz="UTC")
_AGENTS_SCHEMA = pa.schema([
    ("id", pa.string()), ("display_name", pa.string()), ("class", pa.string()),
    ("claw_id", pa.string()), ("status", pa.string()), ("last_heartbeat_at", _TS),
    ("current_task", pa.string()), ("round", pa.int32()), ("heartbeats", pa.int64()),
    ("registered", pa.bool_()), ("registered_at", _TS), ("concurrency_limit", pa.int32()),
    ("heartbeat_interval_s", pa.int32()), ("stall_warning_s", pa.int32()),
    ("recovery_s", pa.int32()), ("max_rounds", pa.int32()), ("dependency_wait_s", pa.int32()),
    ("status_since", _TS), ("note", pa.string()), ("last_seq", pa.int64()),
    ("cooldown_until", _TS), ("last_woken_at", _TS),
])
_MINUTES_SCHEMA = pa.schema([
    ("agent_id", pa.string()), ("minute", _TS), ("heartbeats", pa.int64()), ("last_status", pa.string()),
])
_NOOPS_SCHEMA = pa.schema([
    ("seq", pa.int64()), ("agent_id", pa.string()), ("event", pa.string()),
    ("reason", pa.string()), ("at", _TS),
])
_COLS = ", ".join(f'"{c}"' for c in _AGENTS_SCHEMA.names)


_TS_COLUMNS = {name for name, t in zip(_AGENTS_SCHEMA.names, _AGENTS_SCHEMA.types, strict=True) if t == _TS}
# Timestamps are read as epoch microseconds: turning TIMESTAMPTZ into Python datetimes through
# Arrow builds a zoneinfo per value and costs more than the rest of the load together.
_LOAD_SQL = "SELECT {} FROM agents WHERE id IN (SELECT unnest($ids))".format(", ".join(
    f'epoch_us("{c}")' if c in _TS_COLUMNS else f'"{c}"' for c in _COLUMNS
))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def load(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, Agent]:
    """Current state of the given agents, as stored; unknown ids are absent."""
    fields = list(_COLUMNS.values())
    stamps = [i for i, c in enumerate(_COLUMNS) if c in _TS_COLUMNS]
    out: dict[str, Agent] = {}
    for row in con.execute(_LOAD_SQL, {"ids": ids}).fetchall():
        values = list(row)
        for i in stamps:
            if values[i] is not None:
                values[i] = _EPOCH + timedelta(microseconds=values[i])
        out[values[0]] = Agent(**dict(zip(fields, values, strict=True)))
    return out


def apply(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, AgentEvent]]) -> None:
    """Fold the batch over the touched agents and upsert them, their minutes and no-ops."""
    # `agents.<id>.<event>`: the runtime only hands over events whose subject parsed as such
    ids = [m.subject[7 : m.subject.rindex(".")] for m, _ in batch]
    states = load(con, list(set(ids)))
    last_seq: dict[str, int] = {}
    # (agent, year, month, day, hour, minute) -> [heartbeats, last status]; a tuple of fields is
    # several times cheaper per event than datetime.replace on this hot path.
    minutes: dict[tuple[str, int, int, int, int, int], list[Any]] = {}
    noops: list[tuple[int, str, str, str, datetime]] = []
    heartbeat = AgentHeartbeat
    for aid, (meta, event) in zip(ids, batch, strict=True):
        state = states.get(aid)
        if state is None:
            state = initial_state(aid)
        at = meta.at
        state, reason = evolve(state, event, at)
        states[aid] = state
        last_seq[aid] = meta.seq
        if reason is not None:
            noops.append((meta.seq, aid, event.name, reason, at))
        elif type(event) is heartbeat:
            key = (aid, at.year, at.month, at.day, at.hour, at.minute)
            bucket = minutes.get(key)
            if bucket is None:
                minutes[key] = [1, event.status]
            else:
                bucket[0] += 1
                bucket[1] = event.status
    _upsert_agents(con, [states[a] for a in last_seq], last_seq)
    if minutes:
        _upsert_minutes(con, minutes)
    if noops:
        log.info("agents: %d no-op events, first seq=%s: %s", len(noops), noops[0][0], noops[0][3])
        _insert_noops(con, noops)


def _upsert_agents(con: duckdb.DuckDBPyConnection, agents: list[Agent], last_seq: dict[str, int]) -> None:
    columns = [
        [last_seq[a.id] for a in agents] if c == "last_seq" else [getattr(a, _COLUMNS[c]) for a in agents]
        for c in _AGENTS_SCHEMA.names
    ]
    execute_with(
        con, "_agents_batch", from_columns(columns, _AGENTS_SCHEMA),
        f"INSERT OR REPLACE INTO agents ({_COLS}) SELECT {_COLS} FROM _agents_batch",
    )


def _upsert_minutes(con: duckdb.DuckDBPyConnection, minutes: dict[tuple[str, int, int, int, int, int], list[Any]]) -> None:
    keys = list(minutes)
    table = from_columns([
        [k[0] for k in keys],
        [datetime(*k[1:], tzinfo=UTC) for k in keys],
        [minutes[k][0] for k in keys],
        [minutes[k][1] for k in keys],
    ], _MINUTES_SCHEMA)
    execute_with(
        con, "_minutes_batch", table,
        "INSERT INTO agent_heartbeats SELECT * FROM _minutes_batch "
        "ON CONFLICT (agent_id, minute) DO UPDATE SET "
        "heartbeats = agent_heartbeats.heartbeats + excluded.heartbeats, "
        "last_status = excluded.last_status",
    )


def _insert_noops(con: duckdb.DuckDBPyConnection, noops: list[tuple[int, str, str, str, datetime]]) -> None:
    execute_with(
        con, "_noops_batch", from_rows(noops, _NOOPS_SCHEMA),
        "INSERT OR REPLACE INTO agent_noops SELECT * FROM _noops_batch",
    )
