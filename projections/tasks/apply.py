"""The tasks read model: the work queue, its history, attempts, outputs, comments, and mail.

Every reader folds TASKS with the same pure `events.tasks.evolve` (given the stream seq) and MAIL
with `events.mail.evolve`, so these tables, the command service's memory and a replay agree event
for event: a second `claimed` that raced in through raw `nats pub` is a row of `task_events` with
its `noop_reason`, and the `tasks` row keeps the first claimer.

Tables and views are documented column by column in `projections.tasks.queries`:
`tasks` (current state, one row per task), `task_events` (one row per event), `task_attempts`,
`task_outputs`, `task_comments`, `mail` (one row per message), `mail_events`; views
`actionable_tasks` and `task_tree`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from events import mail as mail_domain
from events import tasks as task_domain
from events.core.meta import Meta
from events.core.registry import Event
from events.core.streams import stream_name
from events.core.subjects import domain_filter
from events.mail import MailEvent, Message
from events.tasks import (
    Task,
    TaskAttemptFinished,
    TaskAttemptStarted,
    TaskCommented,
    TaskOutputAdded,
)
from projections.runtime.arrow_batches import execute_with, from_columns, from_rows
from projections.tasks.queries import DDL, QUERIES

__all__ = ["DDL", "NAME", "QUERIES", "SOURCES", "apply"]

log = logging.getLogger(__name__)

NAME = "tasks"
SOURCES: list[tuple[str, list[str]]] = [
    (stream_name("tasks"), [domain_filter("tasks")]),
    (stream_name("mail"), [domain_filter("mail")]),
]

_TS = pa.timestamp("us", tz="UTC")
_STR, _INT, _BIG, _BOOL, _LIST = pa.string(), pa.int32(), pa.int64(), pa.bool_(), pa.list_(pa.string())
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# tasks column -> type; every column but last_seq is the Task field of the same name
_TASK_SCHEMA = pa.schema([
    ("id", _STR), ("status", _STR), ("project", _STR), ("title", _STR), ("description", _STR),
    ("type", _STR), ("priority", _STR), ("parent_id", _STR), ("level", _INT), ("root_id", _STR),
    ("depends_on", _LIST), ("must_haves", _STR), ("success_criteria", _STR), ("assignee", _STR),
    ("claimed_by", _STR), ("max_rounds", _INT), ("rounds", _INT), ("retry_count", _INT),
    ("attempts", _INT), ("progress", _INT), ("last_error", _STR), ("status_reason", _STR),
    ("resume_status", _STR), ("not_before", _TS), ("fix_ids", _LIST),
    ("root_cause_requested", _BOOL), ("outputs", _INT), ("comments", _INT), ("created_seq", _BIG),
    ("created_at", _TS), ("updated_at", _TS), ("claimed_at", _TS), ("started_at", _TS),
    ("finished_at", _TS), ("last_seq", _BIG),
])
_TASK_FIELDS = _TASK_SCHEMA.names[:-1]
_MAIL_SCHEMA = pa.schema([
    ("id", _STR), ("from_agent", _STR), ("to_agent", _STR), ("performative", _STR),
    ("subject", _STR), ("body", _STR), ("in_reply_to", _STR), ("sent_at", _TS), ("read", _BOOL),
    ("read_at", _TS), ("replied", _BOOL), ("replied_at", _TS), ("reply_ids", _LIST),
    ("seq", _BIG), ("last_seq", _BIG),
])
# Message field -> mail column
_MAIL_FIELDS = {
    "id": "id", "from_agent": "from_agent", "to": "to_agent", "performative": "performative",
    "subject": "subject", "body": "body", "in_reply_to": "in_reply_to", "sent_at": "sent_at",
    "read_at": "read_at", "replied_at": "replied_at", "reply_ids": "reply_ids", "seq": "seq",
}
_EVENTS_SCHEMA = pa.schema([
    ("seq", _BIG), ("at", _TS), ("aggregate_id", _STR), ("event", _STR), ("actor", _STR),
    ("data", _STR), ("noop_reason", _STR),
])
_ATTEMPT_SCHEMA = pa.schema([
    ("task_id", _STR), ("attempt", _INT), ("agent_id", _STR), ("session_id", _STR),
    ("continuation", _INT), ("started_at", _TS), ("finished_at", _TS), ("outcome", _STR),
    ("exit_code", _INT), ("transport", _STR), ("fallback_reason", _STR), ("duration_ms", _BIG),
    ("task_status_at_exit", _STR), ("error", _STR),
])
_OUTPUT_SCHEMA = pa.schema([
    ("seq", _BIG), ("task_id", _STR), ("agent_id", _STR), ("type", _STR), ("title", _STR),
    ("content", _STR), ("content_path", _STR), ("summary", _STR), ("at", _TS),
])
_COMMENT_SCHEMA = pa.schema([
    ("seq", _BIG), ("task_id", _STR), ("author", _STR), ("body", _STR), ("at", _TS),
])
_ACTOR_FIELDS = ("agent_id", "by", "author", "from_agent")
_encode = msgspec.json.encode


def _cols(schema: pa.Schema) -> str:
    return ", ".join(f'"{c}"' for c in schema.names)


def _load(con: duckdb.DuckDBPyConnection, table: str, schema: pa.Schema, ids: list[str]) -> list[dict[str, Any]]:
    """Rows of `table` for `ids`; timestamps read as epoch microseconds (cheaper than tz objects)."""
    if not ids:
        return []
    names = schema.names
    select = ", ".join(
        f'epoch_us("{n}")' if t == _TS else f'"{n}"' for n, t in zip(names, schema.types, strict=True)
    )
    stamps = [n for n, t in zip(names, schema.types, strict=True) if t == _TS]
    out = []
    for row in con.execute(f"SELECT {select} FROM {table} WHERE id IN (SELECT unnest($ids))", {"ids": ids}).fetchall():
        values = dict(zip(names, row, strict=True))
        for n in stamps:
            if values[n] is not None:
                values[n] = _EPOCH + timedelta(microseconds=values[n])
        out.append(values)
    return out


def load_tasks(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, Task]:
    """Current state of the given tasks as stored; unknown ids are absent."""
    out = {}
    for values in _load(con, "tasks", _TASK_SCHEMA, ids):
        fields = {f: values[f] for f in _TASK_FIELDS}
        fields["depends_on"], fields["fix_ids"] = tuple(fields["depends_on"]), tuple(fields["fix_ids"])
        out[values["id"]] = Task(created=True, **fields)
    return out


def load_messages(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, Message]:
    out = {}
    for values in _load(con, "mail", _MAIL_SCHEMA, ids):
        fields = {f: values[c] for f, c in _MAIL_FIELDS.items()}
        fields["reply_ids"] = tuple(fields["reply_ids"])
        out[values["id"]] = Message(sent=True, **fields)
    return out


def _actor(meta: Meta, event: Event) -> str | None:
    for name in _ACTOR_FIELDS:
        value = getattr(event, name, None)
        if value is not None:
            return value  # type: ignore[no-any-return]
    return (meta.headers or {}).get("Agl-Actor")


def _aggregate(subject: str) -> str:
    return subject[subject.index(".") + 1 : subject.rindex(".")]


def apply(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, Event]]) -> None:
    """Fold the batch's TASKS and MAIL events over the touched aggregates and write their rows."""
    task_batch = [(m, e) for m, e in batch if isinstance(e, task_domain.TaskEvent)]
    mail_batch = [(m, e) for m, e in batch if isinstance(e, MailEvent)]
    if task_batch:
        _apply_tasks(con, task_batch)
    if mail_batch:
        _apply_mail(con, mail_batch)


def _apply_tasks(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, Event]]) -> None:
    ids = [_aggregate(m.subject) for m, _ in batch]
    states = load_tasks(con, list(set(ids)))
    last_seq: dict[str, int] = {}
    events: list[tuple[Any, ...]] = []
    attempts: dict[tuple[str, int], dict[str, Any]] = {}
    outputs: list[tuple[Any, ...]] = []
    comments: list[tuple[Any, ...]] = []
    noops = 0
    for tid, (meta, event) in zip(ids, batch, strict=True):
        state = states.get(tid) or task_domain.initial_state(tid)
        state, reason = task_domain.evolve(state, event, meta.at, meta.seq)  # type: ignore[arg-type]
        states[tid] = state
        last_seq[tid] = meta.seq
        events.append((meta.seq, meta.at, tid, event.name, _actor(meta, event), _encode(event).decode(), reason))
        if reason is not None:
            noops += 1
            continue
        match event:
            case TaskAttemptStarted():
                _merge(attempts.setdefault((tid, state.attempts), {}),
                       agent_id=event.agent_id, session_id=event.session_id,
                       continuation=event.continuation, started_at=meta.at)
            case TaskAttemptFinished():
                _merge(attempts.setdefault((tid, event.attempt or state.attempts), {}),
                       agent_id=event.agent_id, finished_at=meta.at, outcome=event.outcome,
                       exit_code=event.exit_code, transport=event.transport,
                       fallback_reason=event.fallback_reason, duration_ms=event.duration_ms,
                       task_status_at_exit=event.task_status_at_exit, error=event.error)
            case TaskOutputAdded():
                outputs.append((meta.seq, tid, event.agent_id, event.type, event.title, event.content,
                                event.content_path, event.summary, meta.at))
            case TaskCommented():
                comments.append((meta.seq, tid, event.author, event.body, meta.at))
    if noops:
        first = next(e for e in events if e[6] is not None)
        log.info("tasks: %d no-op events, first seq=%s: %s", noops, first[0], first[6])
    created = [states[t] for t in last_seq if states[t].created]
    if created:
        columns = [[getattr(t, f) for t in created] for f in _TASK_FIELDS]
        columns.append([last_seq[t.id] for t in created])
        _write(con, "tasks", from_columns(columns, _TASK_SCHEMA), "INSERT OR REPLACE")
    _write(con, "task_events", from_rows(events, _EVENTS_SCHEMA), "INSERT OR REPLACE", "task_id")
    if attempts:
        _upsert_attempts(con, attempts)
    if outputs:
        _write(con, "task_outputs", from_rows(outputs, _OUTPUT_SCHEMA), "INSERT OR REPLACE")
    if comments:
        _write(con, "task_comments", from_rows(comments, _COMMENT_SCHEMA), "INSERT OR REPLACE")


def _apply_mail(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, Event]]) -> None:
    ids = [_aggregate(m.subject) for m, _ in batch]
    states = load_messages(con, list(set(ids)))
    last_seq: dict[str, int] = {}
    events: list[tuple[Any, ...]] = []
    for mid, (meta, event) in zip(ids, batch, strict=True):
        state = states.get(mid) or mail_domain.initial_state(mid)
        state, reason = mail_domain.evolve(state, event, meta.at, meta.seq)  # type: ignore[arg-type]
        states[mid] = state
        last_seq[mid] = meta.seq
        events.append((meta.seq, meta.at, mid, event.name, _actor(meta, event), _encode(event).decode(), reason))
    sent = [states[m] for m in last_seq if states[m].sent]
    if sent:
        columns: dict[str, list[Any]] = {c: [getattr(m, f) for m in sent] for f, c in _MAIL_FIELDS.items()}
        columns["read"] = [m.read_at is not None for m in sent]
        columns["replied"] = [bool(m.reply_ids) for m in sent]
        columns["last_seq"] = [last_seq[m.id] for m in sent]
        table = from_columns([columns[c] for c in _MAIL_SCHEMA.names], _MAIL_SCHEMA)
        _write(con, "mail", table, "INSERT OR REPLACE")
    _write(con, "mail_events", from_rows(events, _EVENTS_SCHEMA), "INSERT OR REPLACE", "message_id")


def _write(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, verb: str, aggregate: str = "") -> None:
    """One `INSERT ... SELECT` of the batch's rows; `aggregate` renames the events' id column."""
    names = [aggregate if aggregate and n == "aggregate_id" else n for n in rows.schema.names]
    target = ", ".join(f'"{n}"' for n in names)
    execute_with(con, f"_{table}_batch", rows,
                 f"{verb} INTO {table} ({target}) SELECT {_cols(rows.schema)} FROM _{table}_batch")


def _merge(row: dict[str, Any], **values: Any) -> None:
    """What `_upsert_attempts` does across batches, inside one: a None leaves the value as it is,
    so live apply and a rebuild agree whatever the batch boundaries."""
    row.update({k: v for k, v in values.items() if v is not None})


def _upsert_attempts(con: duckdb.DuckDBPyConnection, attempts: dict[tuple[str, int], dict[str, Any]]) -> None:
    """Started and finished arrive in different batches: a column stays as it is unless given."""
    keys = list(attempts)
    columns = [[k[0] for k in keys], [k[1] for k in keys]]
    columns += [[attempts[k].get(c) for k in keys] for c in _ATTEMPT_SCHEMA.names[2:]]
    updates = ", ".join(f'"{c}" = COALESCE(excluded."{c}", task_attempts."{c}")' for c in _ATTEMPT_SCHEMA.names[2:])
    execute_with(
        con, "_task_attempts_batch", from_columns(columns, _ATTEMPT_SCHEMA),
        f"INSERT INTO task_attempts SELECT * FROM _task_attempts_batch "
        f"ON CONFLICT (task_id, attempt) DO UPDATE SET {updates}",
    )
