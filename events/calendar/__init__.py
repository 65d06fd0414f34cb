"""The calendar domain: slots synced from a calendar backend (or kept here as one), due slots
and the one outcome of each (`model`), the stream folded into tokens and schedules (`fold`),
and the pure due-slot decision (`due`)."""

from events.calendar.due import (
    MIN_WINDOW,
    AgentView,
    Decision,
    Due,
    agent_views,
    decide,
    due_slots,
    resolve,
    today,
    window_end,
)
from events.calendar.fold import (
    BadDiff,
    Booked,
    Calendar,
    Change,
    Mirror,
    Report,
    apply_patch,
    diff_events,
    evolve_mirror,
)
from events.calendar.model import (
    BACKEND_SLOT,
    PENDING,
    SYNCED_SLOT,
    WAKE_MESSAGE,
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
    session_key,
)

__all__ = [
    "BACKEND_SLOT", "MIN_WINDOW", "PENDING", "SYNCED_SLOT", "WAKE_MESSAGE", "AgentView", "BadDiff",
    "Booked", "Calendar", "CalendarEvent", "Change", "Decision", "Due", "Mirror", "Report",
    "Resynced", "ScheduleSynced", "Slot", "SlotAdded", "SlotChanged", "SlotCreated", "SlotDeleted",
    "SlotDue", "SlotRemoved", "SlotStatusReported", "SlotUpdated", "StatusForwarded", "SyncFailed",
    "WakeSent", "WakeSkipped", "agent_views", "apply_patch", "decide", "diff_events", "due_slots",
    "evolve_mirror", "resolve", "session_key", "today", "window_end",
]
