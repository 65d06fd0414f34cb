"""Run logs (seed 002's `main_logs`): the events; the SDK helper that writes them is
`events.runs.client` (imported by name, as `events.tasks.client` is: it needs the event client,
which needs this catalog first)."""

from events.runs.model import (
    KEEP_CONTENT,
    MAX_CONTENT,
    RunEvent,
    RunEvents,
    RunFinished,
    RunFollowing,
    RunStarted,
    RunStatus,
    cap,
)

__all__ = [
    "KEEP_CONTENT", "MAX_CONTENT", "RunEvent", "RunEvents", "RunFinished", "RunFollowing",
    "RunStarted", "RunStatus", "cap",
]
