"""The language of the reports domain: events, commands, a report's state and the rule errors.

The invariants and the decider are in `events.reports.decide`; the package re-exports both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

import msgspec

from events.core.bounds import Instant
from events.core.policy import Writers, writers
from events.core.registry import Event

Short = Annotated[str, msgspec.Meta(max_length=500)]
Text = Annotated[str, msgspec.Meta(max_length=20_000)]
TargetName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
Severity = Literal["critical", "warning", "info"]
Outcome = Literal["failed", "rate_limited", "timeout"]
Attempt = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Status = Annotated[int, msgspec.Meta(ge=0, le=999)]


# --- events ---------------------------------------------------------------------------------


class ReportEvent(Event, frozen=True, kw_only=True):
    domain: ClassVar[str] = "reports"
    writers: ClassVar[Writers] = writers("notifier")
    written_by: ClassVar[str] = "the notifier service"


class ReportFiled(ReportEvent, frozen=True, kw_only=True):
    """The seed producer's checkpoint fields, what to say, and where (resolved when filed)."""

    name: ClassVar[str] = "filed"
    writers: ClassVar[Writers] = writers("agent", "admin", "gateway")
    written_by: ClassVar[str] = "agents, the admin, or the gateway (reports over HTTP, alerts)"
    team: Short = ""
    worker: Short = ""
    task_id: Short = ""
    progress: Short = ""
    done: Text = ""
    next: Text = ""
    status: Short = "normal"
    source: Short = ""
    title: Short = ""
    body: Text = ""
    targets: Annotated[list[TargetName], msgspec.Meta(min_length=1, max_length=64)]
    severity: Severity | None = None  # alerts: colours the Feishu card
    link: Annotated[str, msgspec.Meta(max_length=2000)] | None = None  # alerts: generatorURL
    alert: Annotated[str, msgspec.Meta(max_length=200)] | None = None  # alerts: `<fingerprint>` firing|resolved


class DeliveryAttempted(ReportEvent, frozen=True, kw_only=True):
    """An attempt that did not deliver; a successful one is `delivered` itself."""

    name: ClassVar[str] = "attempted"
    target: TargetName
    attempt: Attempt
    outcome: Outcome
    status_code: Status | None = None
    error: Short = ""
    retry_at: Instant | None = None  # None: no retry (abandoned follows)


class Delivered(ReportEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "delivered"
    target: TargetName
    attempt: Attempt
    status_code: Status | None = None
    message_id: Short | None = None  # the channel's own id, when it gives one


class Abandoned(ReportEvent, frozen=True, kw_only=True):
    """No more attempts to `target` (None: every target still open)."""

    name: ClassVar[str] = "abandoned"
    writers: ClassVar[Writers] = writers("notifier", "admin")
    written_by: ClassVar[str] = "the notifier (attempt limit or age) or an operator"
    target: TargetName | None = None
    reason: Short
    by: Literal["notifier", "operator"] = "notifier"


class RetryRequested(ReportEvent, frozen=True, kw_only=True):
    """An operator asks for the next attempt now: reopens an abandoned delivery, ends a backoff."""

    name: ClassVar[str] = "retry_requested"
    writers: ClassVar[Writers] = writers("admin")
    written_by: ClassVar[str] = "an operator"
    target: TargetName | None = None


ReportEvents = ReportFiled | DeliveryAttempted | Delivered | Abandoned | RetryRequested


# --- commands -------------------------------------------------------------------------------


class File(msgspec.Struct, frozen=True, kw_only=True):
    event: ReportFiled


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """What one attempt to `target` gave; `retry_after_s` is the platform's hint, if any.

    `jitter` in [0, 1) comes from the caller (the decider draws no random numbers)."""

    target: str
    ok: bool
    outcome: Outcome = "failed"
    status_code: int | None = None
    error: str = ""
    message_id: str | None = None
    retry_after_s: float | None = None
    jitter: float = 0.0


class Abandon(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    target: str | None = None
    by: Literal["notifier", "operator"] = "operator"


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    target: str | None = None


ReportCommand = File | Record | Abandon | Retry


# --- state ----------------------------------------------------------------------------------


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One report to one target."""

    status: Literal["pending", "delivered", "abandoned"] = "pending"
    attempts: int = 0
    retry_at: Instant | None = None
    last_error: str = ""
    status_code: int | None = None
    message_id: str | None = None
    reason: str = ""  # why abandoned
    budget_from: int = 0  # attempts made before the last operator retry (the limit counts after)
    since: datetime | None = None  # the last operator retry: the age limit counts from there


class Report(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    filed: ReportFiled | None = None
    filed_at: datetime | None = None
    seq: int = 0  # stream seq of `filed`: the queue order
    deliveries: dict[str, Delivery] = msgspec.field(default_factory=dict)

    @property
    def status(self) -> str:
        """pending while any target is open; delivered when all are; else abandoned."""
        states = {d.status for d in self.deliveries.values()}
        if "pending" in states or not states:
            return "pending"
        return "delivered" if states == {"delivered"} else "abandoned"


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """Retry rules (settings `report_*`): backoff base x 2^(n-1) up to max, then jittered down by
    up to `jitter` of itself; give up after `max_attempts` or `max_age_s` since filing."""

    base_s: float = 1.0
    max_s: float = 300.0
    jitter: float = 0.2
    max_attempts: int = 12
    max_age_s: float = 86_400.0


# --- errors ---------------------------------------------------------------------------------


class ReportRuleError(Exception):
    """Root of the reports rules; the message names the report and target."""

    code = "conflict"


class NotFound(ReportRuleError):
    code = "not_found"


class AlreadyFiled(ReportRuleError):
    """The id is taken by a report with other fields (the same fields again are a no-op)."""


class UnknownTarget(ReportRuleError):
    code = "not_found"


class AlreadyDelivered(ReportRuleError):
    pass
