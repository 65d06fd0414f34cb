"""The reports domain: owner reports and alert notices, and their delivery to each target.

`events.reports.client` (the SDK's `ReportClient`, which does I/O) is imported by name."""

from events.reports.decide import DEFAULT_POLICY, backoff_s, decide, evolve, initial_state
from events.reports.model import (
    Abandon,
    Abandoned,
    AlreadyDelivered,
    AlreadyFiled,
    Delivered,
    Delivery,
    DeliveryAttempted,
    File,
    NotFound,
    Policy,
    Record,
    Report,
    ReportCommand,
    ReportEvent,
    ReportEvents,
    ReportFiled,
    ReportRuleError,
    Retry,
    RetryRequested,
    UnknownTarget,
)
from events.reports.queue import Board
from events.reports.render import new_id, text, title

__all__ = [
    "DEFAULT_POLICY",
    "Abandon",
    "Abandoned",
    "AlreadyDelivered",
    "AlreadyFiled",
    "Board",
    "Delivered",
    "Delivery",
    "DeliveryAttempted",
    "File",
    "NotFound",
    "Policy",
    "Record",
    "Report",
    "ReportCommand",
    "ReportEvent",
    "ReportEvents",
    "ReportFiled",
    "ReportRuleError",
    "Retry",
    "RetryRequested",
    "UnknownTarget",
    "backoff_s",
    "decide",
    "evolve",
    "initial_state",
    "new_id",
    "text",
    "title",
]
