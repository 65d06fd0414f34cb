"""The language of the tasks domain: events, commands, state and rule errors (DESIGN §6).

The invariants and the decider are in `events.tasks`, which re-exports everything here and the
commands of `events.tasks.commands`; import from there. Split off only to keep files short.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal, NamedTuple

import msgspec

from events.core.bounds import Count, ExitCode, Id, Instant, integer, text
from events.core.policy import Writers, writers
from events.core.registry import Event

Status = Literal[
    "pending", "claimed", "working", "review", "done", "failed", "blocked", "cancelled", "void",
    "requires_manual", "fix_pending",
]
TaskType = Literal["fix", "regular", "creative"]
Priority = Literal["P0", "P1", "P2"]
OutputType = Literal["code", "document", "data", "config", "other"]
FailureKind = Literal["system", "business"]
Title = text(500, min_length=1)  # a fix title quotes an error, line breaks and all
Text = text(20_000)
Content = text(512 * 1024)
Rounds = integer(ge=1)
Percent = integer(le=100)
Level = integer(ge=1, le=2)
Ids = Annotated[list[Id], msgspec.Meta(max_length=1000)]
Outcome = Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,40}$")]
Millis = integer(le=2**63 - 1)  # BIGINT

MAX_ATTEMPTS = 5  # the fifth failure escalates to requires_manual
ROOT_CAUSE_AT = 3  # the third failure asks an analyst agent for the root cause
BACKOFF_BASE_S = 1
BACKOFF_MAX_S = 600
ROUND_WARNING_RATIO = 0.8
ACTIVE: frozenset[str] = frozenset({"claimed", "working", "review"})
TERMINAL: frozenset[str] = frozenset({"done", "cancelled", "void"})
OPEN: frozenset[str] = frozenset({"pending", "claimed", "working", "review", "blocked", "fix_pending"})


def backoff_s(failures: int) -> int:
    """Delay before the retry that follows the `failures`-th failure: 1, 2, 4, ... at most 600."""
    return min(BACKOFF_BASE_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S)


def fix_id(task_id: str, n: int) -> str:
    return f"FIX-{task_id}-{n:03d}"


# --- events ---------------------------------------------------------------------------------


class TaskEvent(Event, frozen=True, kw_only=True):
    domain: ClassVar[str] = "tasks"
    writers: ClassVar[Writers] = writers("tasks")
    written_by: ClassVar[str] = "the tasks service (send a command: cmd.tasks.<verb>)"


class TaskCreated(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "created"
    title: Title
    project: Id | None = None
    description: Text = ""
    type: TaskType = "regular"
    priority: Priority = "P1"
    parent_id: Id | None = None
    level: Level = 1
    root_id: Id | None = None
    depends_on: Ids = msgspec.field(default_factory=list)
    must_haves: Text = ""
    success_criteria: Text = ""
    assignee: Id | None = None
    max_rounds: Rounds | None = None
    not_before: Instant | None = None
    by: Id | None = None


class TaskClaimed(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "claimed"
    agent_id: Id


class TaskStarted(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "started"
    agent_id: Id


class TaskProgressed(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "progressed"
    agent_id: Id
    progress: Percent | None = None
    note: Text | None = None


class TaskSubmitted(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "submitted"
    agent_id: Id
    summary: Text = ""


class TaskApproved(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "approved"
    by: Id
    note: Text = ""


class TaskRejected(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "rejected"
    by: Id
    reason: Text = ""


class TaskFailed(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "failed"
    error: Text
    kind: FailureKind = "system"
    agent_id: Id | None = None
    failures: Count = 0  # this failure's number; 0 from raw publishers means "count it"


class TaskRetryScheduled(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "retry_scheduled"
    failures: Count
    delay_s: Count
    not_before: Instant


class TaskEscalated(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "escalated"
    reason: Text


class TaskFixRequested(TaskEvent, frozen=True, kw_only=True):
    """The parent waits in `fix_pending` for these subtasks (created in the same batch)."""

    name: ClassVar[str] = "fix_requested"
    fix_ids: Ids


class TaskRootCauseRequested(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "root_cause_requested"
    failures: Count
    last_error: Text = ""


class TaskBlocked(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "blocked"
    reason: Text
    by: Id | None = None


class TaskUnblocked(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "unblocked"
    by: Id | None = None
    note: Text = ""


class TaskCancelled(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "cancelled"
    by: Id | None = None
    reason: Text = ""


class TaskVoided(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "voided"
    by: Id | None = None
    reason: Text = ""


class TaskReleased(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "released"
    reason: Text
    by: Id | None = None


class TaskReopened(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "reopened"
    by: Id
    note: Text = ""


class TaskCommented(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "commented"
    author: Id
    body: Text


class TaskOutputAdded(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "output_added"
    agent_id: Id
    type: OutputType = "other"
    title: Title
    content: Content = ""
    content_path: Text | None = None
    summary: Text = ""


class TaskRoundCounted(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "round_counted"
    round: Count = 0  # the round reached; 0 from raw publishers means "one more"
    agent_id: Id | None = None


class TaskRoundWarning(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "round_warning"
    round: Count
    max_rounds: Rounds


class TaskRoundsExtended(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "rounds_extended"
    max_rounds: Rounds
    by: Id


class TaskAttemptStarted(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "attempt_started"
    agent_id: Id
    attempt: Count = 0
    session_id: Text | None = None
    continuation: Count = 0


class TaskAttemptFinished(TaskEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "attempt_finished"
    agent_id: Id
    outcome: Outcome
    attempt: Count = 0
    exit_code: ExitCode | None = None
    transport: Text | None = None
    fallback_reason: Text | None = None
    duration_ms: Millis | None = None
    task_status_at_exit: Text | None = None
    error: Text | None = None


# --- state ----------------------------------------------------------------------------------


class Task(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    created: bool = False
    status: str = "pending"
    project: str | None = None
    title: str = ""
    description: str = ""
    type: str = "regular"
    priority: str = "P1"
    parent_id: str | None = None
    level: int = 1
    root_id: str | None = None
    depends_on: tuple[str, ...] = ()
    must_haves: str = ""
    success_criteria: str = ""
    assignee: str | None = None
    claimed_by: str | None = None
    max_rounds: int | None = None
    rounds: int = 0
    retry_count: int = 0
    attempts: int = 0
    progress: int | None = None
    last_error: str | None = None
    status_reason: str | None = None
    resume_status: str | None = None  # where `unblocked` returns to
    not_before: datetime | None = None
    fix_ids: tuple[str, ...] = ()
    root_cause_requested: bool = False
    outputs: int = 0
    comments: int = 0
    created_seq: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    claimed_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Emitted(NamedTuple):
    """One decided event and the task whose subject it goes to."""

    task_id: str
    event: TaskEvent


# --- errors ---------------------------------------------------------------------------------


class TaskRuleError(Exception):
    """Root of the tasks rules; the message names the task(s) involved."""

    code: ClassVar[str] = "conflict"


class UnknownTask(TaskRuleError):
    code = "not_found"


class AlreadyExists(TaskRuleError):
    pass


class NotClaimable(TaskRuleError):
    pass


class DependenciesOpen(TaskRuleError):
    pass


class SubtasksOpen(TaskRuleError):
    pass


class ParentClosed(TaskRuleError):
    pass


class NotDue(TaskRuleError):
    pass


class AssignedToOther(TaskRuleError):
    pass


class NotClaimer(TaskRuleError):
    pass


class InvalidTransition(TaskRuleError):
    pass


class SubtaskCannotHaveSubtasks(TaskRuleError):
    pass


class InvalidDependency(TaskRuleError):
    code = "invalid"


class FixIdTooLong(TaskRuleError):
    code = "invalid"
