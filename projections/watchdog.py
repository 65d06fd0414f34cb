"""The watchdog read model: every decision the watchdog took, with its cause.

`watchdog_decisions`, one row per decision event (`watchdog.<agent_id>.<decision>`):
- seq: stream seq; at: JetStream time; agent_id: the subject's aggregate (the agent concerned,
  or the analyst for `analyst_woken`); decision: the event name (suspected, timed_out, stuck,
  dependency_waited, round_warned, round_paused, backlog_noticed, analyst_woken,
  heartbeat_scheduled); key: the decision's deterministic id (its Nats-Msg-Id)
- task_id: the task acted on, if any; cause: why, in words with the numbers
- step, action: the recovery ladder's step and what it did (timed_out); notify: who was told
- data: the whole event as JSON
"""

from __future__ import annotations

import duckdb
import msgspec
import pyarrow as pa

from events.core.meta import Meta
from events.core.streams import stream_name
from events.core.subjects import domain_filter
from events.watchdog import WatchdogEvent
from projections.runtime.arrow_batches import execute_with, from_rows

NAME = "watchdog"
SOURCES: list[tuple[str, list[str]]] = [(stream_name("watchdog"), [domain_filter("watchdog")])]
DECISIONS = (
    "suspected", "timed_out", "stuck", "dependency_waited", "round_warned", "round_paused",
    "backlog_noticed", "analyst_woken", "heartbeat_scheduled",
)

DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS watchdog_decisions (
        seq BIGINT PRIMARY KEY,
        "at" TIMESTAMPTZ NOT NULL,
        agent_id VARCHAR NOT NULL,
        decision VARCHAR NOT NULL,
        "key" VARCHAR NOT NULL,
        task_id VARCHAR,
        cause VARCHAR NOT NULL,
        step INTEGER,
        action VARCHAR,
        notify VARCHAR[],
        data JSON NOT NULL
    )""",
]

QUERIES: dict[str, str] = {
    "list": (
        "SELECT * FROM watchdog_decisions WHERE ($agent IS NULL OR agent_id = $agent) "
        "AND ($task IS NULL OR task_id = $task) ORDER BY seq DESC LIMIT $limit"
    ),
    "counts": "SELECT decision, count(*) AS n FROM watchdog_decisions GROUP BY decision ORDER BY decision",
}

_SCHEMA = pa.schema([
    ("seq", pa.int64()), ("at", pa.timestamp("us", tz="UTC")), ("agent_id", pa.string()),
    ("decision", pa.string()), ("key", pa.string()), ("task_id", pa.string()),
    ("cause", pa.string()), ("step", pa.int32()), ("action", pa.string()),
    ("notify", pa.list_(pa.string())), ("data", pa.string()),
])
_encode = msgspec.json.Encoder().encode


def apply(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, WatchdogEvent]]) -> None:
    rows = [
        (
            meta.seq, meta.at, meta.subject.split(".")[1], event.name, event.key, event.task_id,
            event.cause, getattr(event, "step", None), getattr(event, "action", None),
            getattr(event, "notify", None), _encode(event).decode(),
        )
        for meta, event in batch
    ]
    execute_with(con, "_decisions_batch", from_rows(rows, _SCHEMA),
                 "INSERT OR REPLACE INTO watchdog_decisions SELECT * FROM _decisions_batch")
