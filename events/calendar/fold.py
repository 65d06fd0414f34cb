"""The calendar as a fold of the CALENDAR stream: each claw's token and synced schedules, the
built-in calendar's slots and their change log, and which due slots already have an outcome.

Invariants:
- the token of a claw is the one of its last `synced`; a full sync replaces that claw's whole
  schedule and date, a diff only touches the slots its `slot_*` events name;
- an outcome (`wake_sent` or `wake_skipped`) is kept per (agent, slot, due time): the scheduler
  never decides a slot and due time that already has one, so a restart repeats nothing;
- the built-in calendar's slot ids are the count of `slot_created` events, so each is unique;
- `apply` is total: an event that does not fit returns the reason, and changes nothing.

`Calendar` is a container like the tasks `Board`: `apply` folds one event into it; the per-claw
rules are the pure `evolve_mirror`, and `diff_events` turns a backend's diff into the events a
scheduler appends (or refuses it with `BadDiff`, which makes the scheduler resync in full).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from msgspec.structs import replace

from events.calendar.model import (
    CalendarEvent,
    Resynced,
    ScheduleSynced,
    Slot,
    SlotAdded,
    SlotChanged,
    SlotCreated,
    SlotDeleted,
    SlotDue,
    SlotRemoved,
    SlotStatusReported,
    SlotUpdated,
    StatusForwarded,
    SyncFailed,
    WakeSent,
    WakeSkipped,
)
from events.core.subjects import check_id


class BadDiff(Exception):
    """A diff that does not apply to the schedule the claw holds; the message names the op."""


class Mirror(msgspec.Struct, frozen=True, kw_only=True):
    """What one claw holds of its backend: schedules by agent, then by slot key."""

    claw: str
    token: str | None = None
    date: str | None = None
    schedules: dict[str, dict[str, Slot]] = {}
    last_sync_at: datetime | None = None
    last_full_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    resyncs: int = 0


class Booked(NamedTuple):
    agent: str
    date: str
    slot: Slot
    claw: str | None


class Change(NamedTuple):
    """One change of the built-in calendar, as the sync API reports it in a diff."""

    seq: int
    agent: str
    op: str  # add | update | remove
    key: str
    date: str
    claw: str | None
    slot: Slot | None = None
    patch: dict[str, Any] | None = None


class Report(NamedTuple):
    seq: int
    agent: str
    event: SlotStatusReported


def apply_patch(slot: Slot, patch: Mapping[str, Any], where: str = "patch") -> Slot:
    """The slot with `patch`'s fields; a field that breaks the slot's schema is a BadDiff."""
    merged = {**msgspec.structs.asdict(slot), **patch}
    try:
        return msgspec.convert(merged, Slot)
    except msgspec.ValidationError as exc:
        raise BadDiff(f"{where} does not fit a slot: {exc}") from None


def evolve_mirror(m: Mirror, agent: str | None, event: CalendarEvent, at: datetime) -> tuple[Mirror, str | None]:
    """Fold one event of a claw (`agent` None) or of a synced slot of `agent`."""
    match event:
        case ScheduleSynced(full=True):
            schedules = {a: {s.key: s for s in slots} for a, slots in (event.schedules or {}).items()}
            return replace(m, token=event.token, date=event.date, schedules=schedules,
                           last_sync_at=at, last_full_at=at, last_error=None), None
        case ScheduleSynced():
            return replace(m, token=event.token, last_sync_at=at, last_error=None), None
        case SyncFailed():
            return replace(m, last_error=event.error, last_error_at=at), None
        case Resynced():
            return replace(m, token=None, resyncs=m.resyncs + 1), None
        case SlotAdded() if agent is not None:
            return _with(m, agent, event.slot.key, event.slot), None
        case SlotUpdated() if agent is not None:
            current = m.schedules.get(agent, {}).get(event.slot_id)
            if current is None:
                return m, f"slot {event.slot_id} of {agent} is not in claw {m.claw}'s schedule"
            try:
                return _with(m, agent, event.slot_id, apply_patch(current, event.patch)), None
            except BadDiff as exc:
                return m, str(exc)
        case SlotRemoved() if agent is not None:
            if event.slot_id not in m.schedules.get(agent, {}):
                return m, f"slot {event.slot_id} of {agent} is not in claw {m.claw}'s schedule"
            return _with(m, agent, event.slot_id, None), None
        case _:
            return m, f"{type(event).__name__} is not a sync event"


def _with(m: Mirror, agent: str, key: str, slot: Slot | None) -> Mirror:
    slots = dict(m.schedules.get(agent, {}))
    if slot is None:
        slots.pop(key, None)
    else:
        slots[key] = slot
    return replace(m, schedules={**m.schedules, agent: slots})


def diff_events(claw: str, mirror: Mirror, diff: Iterable[Any]) -> list[tuple[str, CalendarEvent]]:
    """The `slot_*` events of a diff answer, checked against the schedule as it would be after
    each op; an op of unknown shape, or an update/remove of a slot the claw does not hold, is
    a BadDiff (the claw's copy has drifted, only a full sync repairs it)."""
    held = {a: set(slots) for a, slots in mirror.schedules.items()}
    out: list[tuple[str, CalendarEvent]] = []
    for i, op in enumerate(diff):
        where = f"diff[{i}]"
        if not isinstance(op, dict):
            raise BadDiff(f"{where} is not an object")
        agent = op.get("agent")
        try:
            check_id(agent, "agent")  # type: ignore[arg-type]
        except ValueError:
            raise BadDiff(f"{where}.agent {agent!r} is not a valid agent id") from None
        kind = op.get("op")
        if kind == "add":
            try:
                slot = msgspec.convert(op.get("slot"), Slot)
            except msgspec.ValidationError as exc:
                raise BadDiff(f"{where}.slot: {exc}") from None
            if not slot.key:
                raise BadDiff(f"{where}.slot has neither id nor virtual_id")
            held.setdefault(agent, set()).add(slot.key)
            out.append((agent, SlotAdded(claw=claw, slot=slot)))
            continue
        if kind not in ("update", "remove"):
            raise BadDiff(f"{where}.op {kind!r} is not add, update or remove")
        key = op.get("slotId")
        if key is None or str(key) not in held.get(agent, set()):
            raise BadDiff(f"{where}: {kind} of slot {key!r} of {agent}, which the schedule does not hold")
        key = str(key)
        if kind == "remove":
            held[agent].discard(key)
            out.append((agent, SlotRemoved(claw=claw, slot_id=key)))
            continue
        patch = op.get("patch")
        if not isinstance(patch, dict):
            raise BadDiff(f"{where}.patch is not an object")
        current = mirror.schedules.get(agent, {}).get(key) or Slot(scheduled_at="00:00", id=None)
        apply_patch(current, patch, f"{where}.patch")
        out.append((agent, SlotUpdated(claw=claw, slot_id=key, patch=patch)))
    return out


@dataclass
class Calendar:
    """The whole CALENDAR stream folded; `seq` is the last stream sequence applied."""

    mirrors: dict[str, Mirror] = field(default_factory=dict)
    booked: dict[tuple[str, str], Booked] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    outcomes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    dues: set[tuple[str, str, str]] = field(default_factory=set)
    reports: list[Report] = field(default_factory=list)
    forwarded: set[int] = field(default_factory=set)
    agent_status: dict[str, str] = field(default_factory=dict)
    created: int = 0  # slot_created events so far: the last id given
    created_seq: int = 0  # stream seq of the last slot_created
    seq: int = 0

    def mirror(self, claw: str) -> Mirror:
        return self.mirrors.get(claw) or Mirror(claw=claw)

    def apply(self, aggregate: str, event: CalendarEvent, at: datetime, seq: int) -> str | None:
        """Fold one event of `calendar.<aggregate>.*`; the reason when it changed nothing."""
        self.seq = max(self.seq, seq)
        match event:
            case ScheduleSynced() | SyncFailed() | Resynced():
                return self._mirror(aggregate, None, event, at)
            case SlotAdded() | SlotUpdated() | SlotRemoved():
                return self._mirror(event.claw, aggregate, event, at)
            case SlotDue():
                self.dues.add((aggregate, event.slot_id, event.due_at))
                return None
            case WakeSent() | WakeSkipped():
                key = (aggregate, event.slot_id, event.due_at)
                if key in self.outcomes:
                    return f"slot {event.slot_id} of {aggregate} due {event.due_at} has an outcome already"
                self.outcomes[key] = "woken" if isinstance(event, WakeSent) else "skipped"
                return None
            case SlotStatusReported():
                return self._report(aggregate, event, seq)
            case StatusForwarded():
                self.forwarded.add(event.report_seq)
                return None
            case SlotCreated() | SlotChanged() | SlotDeleted():
                return self._book(aggregate, event, seq)
            case _:
                return f"unhandled event {type(event).__name__}"

    def _mirror(self, claw: str, agent: str | None, event: CalendarEvent, at: datetime) -> str | None:
        state, reason = evolve_mirror(self.mirror(claw), agent, event, at)
        self.mirrors[claw] = state
        return reason

    def _report(self, agent: str, event: SlotStatusReported, seq: int) -> str | None:
        self.agent_status[agent] = event.status
        if event.claw is None:
            self.reports.append(Report(seq, agent, event))
        if event.slot_id is None or event.slot_status is None:
            return None
        booked = self.booked.get((agent, event.slot_id))
        if booked is not None:
            slot = replace(booked.slot, status=event.slot_status)
            self.booked[(agent, event.slot_id)] = booked._replace(slot=slot)
            self.changes.append(Change(seq, agent, "update", event.slot_id, booked.date, booked.claw,
                                       patch={"status": event.slot_status}))
        return None

    def _book(self, agent: str, event: SlotCreated | SlotChanged | SlotDeleted, seq: int) -> str | None:
        if isinstance(event, SlotCreated):
            self.created += 1
            self.created_seq = seq
            key = event.slot.key
            if (agent, key) in self.booked:
                return f"slot {key} of {agent} exists already"
            self.booked[(agent, key)] = Booked(agent, event.date, event.slot, event.claw)
            self.changes.append(Change(seq, agent, "add", key, event.date, event.claw, slot=event.slot))
            return None
        current = self.booked.get((agent, event.slot_id))
        if current is None:
            return f"slot {event.slot_id} of {agent} does not exist"
        if isinstance(event, SlotDeleted):
            del self.booked[(agent, event.slot_id)]
            self.changes.append(Change(seq, agent, "remove", event.slot_id, current.date, current.claw))
            return None
        try:
            slot = apply_patch(current.slot, event.patch)
        except BadDiff as exc:
            return str(exc)
        self.booked[(agent, event.slot_id)] = current._replace(slot=slot)
        self.changes.append(Change(seq, agent, "update", event.slot_id, current.date, current.claw,
                                   patch=event.patch))
        return None

    def day(self, date: str, claw: str | None = None) -> dict[str, list[Slot]]:
        """The built-in calendar's slots of `date` by agent (for one claw: its own and the
        unassigned ones), each agent's in time order."""
        out: dict[str, list[Slot]] = {}
        for b in self.booked.values():
            if b.date == date and (claw is None or b.claw in (None, claw)):
                out.setdefault(b.agent, []).append(b.slot)
        return {a: sorted(s, key=lambda x: (x.scheduled_at, x.key)) for a, s in sorted(out.items())}

    def changes_since(self, seq: int, date: str, claw: str) -> list[Change]:
        return [c for c in self.changes if c.seq > seq and c.date == date and c.claw in (None, claw)]
