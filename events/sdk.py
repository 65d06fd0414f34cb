"""The SDK in one import: what an agent's script needs to write events and send task commands.

`from events.sdk import EventClient, ReportClient, TaskManager` is the stable public path; the modules behind it
(`events.core.client`, `events.tasks.client`) may move. Event types stay in their domains
(`events.agents.AgentHeartbeat`, `events.tasks.TaskCreated`, ...).
"""

from events.core.client import EventClient, PublishError, Refused, prepare, prepare_json
from events.core.errors import (
    Conflict,
    EventError,
    Forbidden,
    Unavailable,
    UnknownEvent,
    ValidationError,
)
from events.reports.client import Filed, ReportClient
from events.runs.client import RunLogger, get_logger
from events.tasks.client import NotFound, TaskClient, TaskManager

__all__ = [
    "Conflict",
    "EventClient",
    "EventError",
    "Filed",
    "Forbidden",
    "NotFound",
    "PublishError",
    "Refused",
    "ReportClient",
    "RunLogger",
    "TaskClient",
    "TaskManager",
    "Unavailable",
    "UnknownEvent",
    "ValidationError",
    "get_logger",
    "prepare",
    "prepare_json",
]
