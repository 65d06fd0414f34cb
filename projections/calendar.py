"""The calendar read model: every schedule per agent and date, every wake outcome, each claw's
sync status. Folded from CALENDAR with the calendar domain's own rules (`apply_patch`), so the
rows say what the scheduler's fold says.

Tables (timestamps TIMESTAMPTZ UTC, JetStream time of the event unless said otherwise):

`calendar_slots`, one row per slot currently scheduled:
- source: `calendar` for agentledger's built-in calendar, `claw:<claw_identifier>` for the copy a
  claw synced from its backend; agent_id; date: the schedule's day (YYYY-MM-DD)
- slot_id: the slot's id (or virtual id); virtual_id, slot_type, estimated_duration (minutes),
  scheduled_at (`HH:MM[:SS]` or ISO), status, priority, event_type, event_data (JSON text)
- seq: stream seq of the last event that changed the row

`calendar_wakes`, one row per slot and due time that has an outcome:
- agent_id, slot_id, due_at (when the slot fell due), outcome `woken` | `skipped`, reason (skip
  reason: agent_busy, cooling_down, unknown_agent, outside_window, wake_failed), detail,
  channel (nats | command | webhook) and session of a wake, at (when decided), seq

`calendar_sync`, one row per claw: token (last sync token), date, last_sync_at, last_full_at,
last_error, last_error_status, last_error_at, resyncs, last_resync_reason.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from events.calendar import (
    CalendarEvent,
    Resynced,
    ScheduleSynced,
    Slot,
    SlotAdded,
    SlotChanged,
    SlotCreated,
    SlotDeleted,
    SlotRemoved,
    SlotStatusReported,
    SlotUpdated,
    SyncFailed,
    WakeSent,
    WakeSkipped,
    apply_patch,
)
from events.core.meta import Meta
from events.core.streams import stream_name
from events.core.subjects import domain_filter
from projections.runtime.arrow_batches import execute_with, from_rows

NAME = "calendar"
SOURCES: list[tuple[str, list[str]]] = [(stream_name("calendar"), [domain_filter("calendar")])]
BUILT_IN = "calendar"

DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS calendar_slots (
        source VARCHAR NOT NULL,           -- calendar | claw:<claw_identifier>
        agent_id VARCHAR NOT NULL,
        date VARCHAR NOT NULL,             -- the schedule's day, YYYY-MM-DD
        slot_id VARCHAR NOT NULL,          -- id, or virtual id
        virtual_id VARCHAR,
        slot_type VARCHAR,
        estimated_duration INTEGER,        -- minutes
        scheduled_at VARCHAR NOT NULL,     -- HH:MM[:SS] on date, or ISO
        status VARCHAR NOT NULL,           -- not_started | deferred | started | completed | ...
        priority INTEGER NOT NULL,
        event_type VARCHAR,
        event_data VARCHAR,                -- JSON text
        seq BIGINT NOT NULL,               -- last event that changed the row
        PRIMARY KEY (source, agent_id, slot_id)
    )""",
    """CREATE TABLE IF NOT EXISTS calendar_wakes (
        agent_id VARCHAR NOT NULL,
        slot_id VARCHAR NOT NULL,
        due_at TIMESTAMPTZ NOT NULL,       -- when the slot fell due
        outcome VARCHAR NOT NULL,          -- woken | skipped
        reason VARCHAR,                    -- why skipped
        detail VARCHAR,
        channel VARCHAR,                   -- nats | command | webhook, for a wake
        session VARCHAR,                   -- agent:<id>:hf-wakeup, for a wake
        "at" TIMESTAMPTZ NOT NULL,         -- when decided
        seq BIGINT NOT NULL,
        PRIMARY KEY (agent_id, slot_id, due_at)
    )""",
    """CREATE TABLE IF NOT EXISTS calendar_sync (
        claw VARCHAR PRIMARY KEY,
        token VARCHAR,                     -- last sync token (NULL after a resync began)
        date VARCHAR,                      -- day of the last full sync
        last_sync_at TIMESTAMPTZ,
        last_full_at TIMESTAMPTZ,
        last_error VARCHAR,
        last_error_status INTEGER,
        last_error_at TIMESTAMPTZ,
        resyncs BIGINT NOT NULL,
        last_resync_reason VARCHAR
    )""",
]

QUERIES: dict[str, str] = {
    "day": (
        "SELECT s.agent_id, s.source, s.date, s.slot_id, s.scheduled_at, s.status, s.priority, s.slot_type, "
        "s.estimated_duration, w.due_at, w.outcome, w.reason, w.detail, w.at AS decided_at "
        "FROM calendar_slots s LEFT JOIN (SELECT * FROM calendar_wakes "
        "QUALIFY row_number() OVER (PARTITION BY agent_id, slot_id ORDER BY due_at DESC) = 1) w "
        "ON w.agent_id = s.agent_id AND w.slot_id = s.slot_id "
        "WHERE s.date = $date AND ($agent IS NULL OR s.agent_id = $agent) "
        "ORDER BY s.agent_id, s.scheduled_at, s.slot_id, s.source"
    ),
    "wakes": "SELECT * FROM calendar_wakes ORDER BY due_at, agent_id, slot_id",
    "sync": "SELECT * FROM calendar_sync ORDER BY claw",
    "wake_counts": "SELECT outcome, count(*) AS wakes FROM calendar_wakes GROUP BY outcome ORDER BY outcome",
    "sync_ages": (
        "SELECT claw, epoch(now()) - epoch(last_sync_at) AS age_s FROM calendar_sync "
        "WHERE last_sync_at IS NOT NULL ORDER BY claw"
    ),
}

_TS = pa.timestamp("us", tz="UTC")
_SLOTS = pa.schema([
    ("source", pa.string()), ("agent_id", pa.string()), ("date", pa.string()), ("slot_id", pa.string()),
    ("virtual_id", pa.string()), ("slot_type", pa.string()), ("estimated_duration", pa.int32()),
    ("scheduled_at", pa.string()), ("status", pa.string()), ("priority", pa.int32()),
    ("event_type", pa.string()), ("event_data", pa.string()), ("seq", pa.int64()),
])
_WAKES = pa.schema([
    ("agent_id", pa.string()), ("slot_id", pa.string()), ("due_at", _TS), ("outcome", pa.string()),
    ("reason", pa.string()), ("detail", pa.string()), ("channel", pa.string()), ("session", pa.string()),
    ("at", _TS), ("seq", pa.int64()),
])
_SYNC = pa.schema([
    ("claw", pa.string()), ("token", pa.string()), ("date", pa.string()), ("last_sync_at", _TS),
    ("last_full_at", _TS), ("last_error", pa.string()), ("last_error_status", pa.int32()),
    ("last_error_at", _TS), ("resyncs", pa.int64()), ("last_resync_reason", pa.string()),
])
SlotKey = tuple[str, str, str]  # source, agent, slot


class _Batch:
    """The rows a batch touches, read once from the table, changed in memory, written once."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.slots: dict[SlotKey, tuple[str, Slot, int] | None] = {}  # (date, slot, seq) or removed
        self.cleared: set[str] = set()
        self.loaded: set[str] = set()
        self.wakes: list[tuple[Any, ...]] = []
        self.sync: dict[str, dict[str, Any]] = {}

    def _load(self, source: str) -> None:
        if source in self.loaded:
            return
        self.loaded.add(source)
        if source in self.cleared:
            return
        cols = ", ".join(_SLOTS.names)
        for row in self.con.execute(f"SELECT {cols} FROM calendar_slots WHERE source = ?", [source]).fetchall():
            r = dict(zip(_SLOTS.names, row, strict=True))
            key = (source, r["agent_id"], r["slot_id"])
            if key not in self.slots:
                data = {k: r[k] for k in ("virtual_id", "slot_type", "estimated_duration", "scheduled_at",
                                          "status", "priority", "event_type") if r[k] is not None}
                data["event_data"] = json.loads(r["event_data"]) if r["event_data"] else None
                if r["slot_id"].isdigit():
                    data["id"] = int(r["slot_id"])
                self.slots[key] = (r["date"], msgspec.convert(data, Slot), r["seq"])

    def slot(self, key: SlotKey) -> tuple[str, Slot, int] | None:
        self._load(key[0])
        return self.slots.get(key)

    def put(self, key: SlotKey, date: str, slot: Slot | None, seq: int) -> None:
        self._load(key[0])
        self.slots[key] = None if slot is None else (date, slot, seq)

    def clear(self, source: str) -> None:
        self._load(source)
        self.cleared.add(source)
        for key in [k for k in self.slots if k[0] == source]:
            self.slots[key] = None

    def claw(self, claw: str) -> dict[str, Any]:
        if claw not in self.sync:
            found = self.con.execute("SELECT * FROM calendar_sync WHERE claw = ?", [claw]).fetchall()
            self.sync[claw] = dict(zip(_SYNC.names, found[0], strict=True)) if found else {
                **dict.fromkeys(_SYNC.names), "claw": claw, "resyncs": 0}
        return self.sync[claw]


def apply(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, CalendarEvent]]) -> None:
    b = _Batch(con)
    for meta, event in batch:
        _one(b, meta.subject.split(".")[1], event, meta.at, meta.seq)
    _write(b)


def _one(b: _Batch, agg: str, event: CalendarEvent, at: datetime, seq: int) -> None:
    match event:
        case ScheduleSynced():
            s = b.claw(agg)
            s.update(token=event.token, last_sync_at=at)
            if event.full:
                s.update(date=event.date, last_full_at=at)
                b.clear(f"claw:{agg}")
                for agent, slots in (event.schedules or {}).items():
                    for slot in slots:
                        b.put((f"claw:{agg}", agent, slot.key), event.date or "", slot, seq)
        case SyncFailed():
            b.claw(agg).update(last_error=event.error, last_error_status=event.status, last_error_at=at)
        case Resynced():
            s = b.claw(agg)
            s.update(token=None, resyncs=(s["resyncs"] or 0) + 1, last_resync_reason=event.reason)
        case SlotAdded():
            b.put((f"claw:{event.claw}", agg, event.slot.key), b.claw(event.claw)["date"] or "", event.slot, seq)
        case SlotUpdated() | SlotChanged():
            source = f"claw:{event.claw}" if isinstance(event, SlotUpdated) else BUILT_IN
            _patch(b, (source, agg, event.slot_id), event.patch, seq)
        case SlotRemoved():
            b.put((f"claw:{event.claw}", agg, event.slot_id), "", None, seq)
        case SlotCreated():
            b.put((BUILT_IN, agg, event.slot.key), event.date, event.slot, seq)
        case SlotDeleted():
            b.put((BUILT_IN, agg, event.slot_id), "", None, seq)
        case SlotStatusReported() if event.slot_id and event.slot_status:
            _patch(b, (BUILT_IN, agg, event.slot_id), {"status": event.slot_status}, seq)
        case WakeSent():
            b.wakes.append((agg, event.slot_id, _instant(event.due_at), "woken", None, None,
                            event.channel, event.session, at, seq))
        case WakeSkipped():
            b.wakes.append((agg, event.slot_id, _instant(event.due_at), "skipped", event.reason,
                            event.detail or None, None, None, at, seq))
        case _:
            pass


def _patch(b: _Batch, key: SlotKey, patch: dict[str, Any], seq: int) -> None:
    current = b.slot(key)
    if current is None:
        return  # the fold records the same no-op; nothing to show
    try:
        b.put(key, current[0], apply_patch(current[1], patch), seq)
    except ValueError:
        return


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _write(b: _Batch) -> None:
    con = b.con
    for source in b.cleared:
        con.execute("DELETE FROM calendar_slots WHERE source = ?", [source]).fetchall()
    gone = [k for k, v in b.slots.items() if v is None and k[0] not in b.cleared]
    if gone:
        execute_with(con, "_gone", from_rows(gone, pa.schema([("source", pa.string()), ("agent_id", pa.string()),
                                                              ("slot_id", pa.string())])),
                     "DELETE FROM calendar_slots s USING _gone g WHERE s.source = g.source "
                     "AND s.agent_id = g.agent_id AND s.slot_id = g.slot_id")
    live = [(k[0], k[1], d, k[2], s.virtual_id, s.slot_type, s.estimated_duration, s.scheduled_at, s.status,
             s.priority, s.event_type, json.dumps(s.event_data) if s.event_data is not None else None, seq)
            for k, v in b.slots.items() if v is not None for d, s, seq in [v]]
    if live:
        execute_with(con, "_slots", from_rows(live, _SLOTS), "INSERT OR REPLACE INTO calendar_slots SELECT * FROM _slots")
    if b.wakes:
        first = {(w[0], w[1], w[2]): w for w in reversed(b.wakes)}  # one outcome per slot and due time
        execute_with(con, "_wakes", from_rows(list(first.values()), _WAKES),
                     "INSERT INTO calendar_wakes SELECT * FROM _wakes ON CONFLICT DO NOTHING")
    if b.sync:
        rows = [tuple(s[n] for n in _SYNC.names) for s in b.sync.values()]
        execute_with(con, "_sync", from_rows(rows, _SYNC), "INSERT OR REPLACE INTO calendar_sync SELECT * FROM _sync")
