"""The runs read model (seed 002's `main_logs`): one row per run, folded from RUNS.

`runs`, one row per run id:
- run_id: the aggregate id of `runs.<run_id>.<event>`; agent_id, task_id, log_type: from `started`
- status: running (started), following (a progress line came), success | failed | skipped
- started_at, finished_at, last_at: JetStream times of `started`, `finished`, the newest event
- lines: progress lines so far; last_line: the newest one
- duration_ms, level, message: from `finished`
- content: the log text, `finished.content` when given, else the progress lines; capped as
  the seed caps `run_content` (past 100,000 characters the newest 80,000 are kept)
- last_seq: stream seq of the newest event of the run
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from events.core.meta import Meta
from events.core.streams import stream_name
from events.core.subjects import domain_filter
from events.runs import RunEvent, RunFinished, RunFollowing, RunStarted, cap
from projections.runtime.arrow_batches import execute_with, from_rows

NAME = "runs"
SOURCES: list[tuple[str, list[str]]] = [(stream_name("runs"), [domain_filter("runs")])]

DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY,
        agent_id VARCHAR,
        task_id VARCHAR,
        log_type VARCHAR,
        status VARCHAR NOT NULL,
        started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ,
        last_at TIMESTAMPTZ NOT NULL,
        lines BIGINT NOT NULL,
        last_line VARCHAR,
        duration_ms BIGINT,
        level VARCHAR,
        message VARCHAR,
        content VARCHAR NOT NULL,
        last_seq BIGINT NOT NULL
    )""",
]

_FILTER = (
    "($task IS NULL OR task_id = $task) AND ($agent IS NULL OR agent_id = $agent) "
    "AND ($status IS NULL OR status = $status)"
)
QUERIES: dict[str, str] = {
    "list": f"SELECT * EXCLUDE (content) FROM runs WHERE {_FILTER} ORDER BY last_seq DESC LIMIT $limit",
    "get": "SELECT * FROM runs WHERE run_id = $id",
    "tails": "SELECT * EXCLUDE (content), right(content, $chars) AS tail FROM runs ORDER BY last_seq DESC LIMIT $limit",
    "task_logs": "SELECT * FROM runs WHERE task_id = $id ORDER BY last_seq DESC LIMIT 50",
    "response_times": (
        "SELECT agent_id, avg(duration_ms) / 1000.0 AS seconds FROM runs "
        "WHERE duration_ms IS NOT NULL AND agent_id IS NOT NULL GROUP BY agent_id ORDER BY agent_id"
    ),
}

_TS = pa.timestamp("us", tz="UTC")
_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("agent_id", pa.string()), ("task_id", pa.string()),
    ("log_type", pa.string()), ("status", pa.string()), ("started_at", _TS), ("finished_at", _TS),
    ("last_at", _TS), ("lines", pa.int64()), ("last_line", pa.string()), ("duration_ms", pa.int64()),
    ("level", pa.string()), ("message", pa.string()), ("content", pa.string()), ("last_seq", pa.int64()),
])
_COLS = ", ".join(_SCHEMA.names)


def _load(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, dict[str, Any]]:
    found = con.execute(f"SELECT {_COLS} FROM runs WHERE run_id IN (SELECT unnest($ids))",
                        {"ids": ids}).fetchall()
    return {r[0]: dict(zip(_SCHEMA.names, r, strict=True)) for r in found}


def apply(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, RunEvent]]) -> None:
    """Fold the batch over the touched runs as stored, then replace their rows in one insert."""
    ids = [meta.subject.split(".")[1] for meta, _ in batch]
    rows = _load(con, list(set(ids)))
    for run_id, (meta, event) in zip(ids, batch, strict=True):
        r = rows.get(run_id) or {c: None for c in _SCHEMA.names} | {
            "run_id": run_id, "lines": 0, "content": "", "status": "running",
        }
        rows[run_id] = r
        r["last_at"], r["last_seq"] = meta.at, meta.seq
        match event:
            case RunStarted():
                r.update(agent_id=event.agent_id, task_id=event.task_id, log_type=event.log_type,
                         started_at=meta.at)
            case RunFollowing():
                r.update(status="following", last_line=event.line, lines=r["lines"] + 1,
                         content=cap(r["content"] + event.line + "\n"))
            case RunFinished():
                r.update(status=event.status, finished_at=meta.at, duration_ms=event.duration_ms,
                         level=event.level, message=event.message or None)
                if event.content:
                    r["content"] = cap(event.content)
    if rows:
        table = from_rows([tuple(r[c] for c in _SCHEMA.names) for r in rows.values()], _SCHEMA)
        execute_with(con, "_runs_batch", table,
                     f"INSERT OR REPLACE INTO runs ({_COLS}) SELECT {_COLS} FROM _runs_batch")
