"""Commands of the tasks domain: intentions sent to `cmd.tasks.<verb>`, which `decide` may refuse.

Commands refuse unknown fields (the edge catches typos); the task id travels beside the command
(the request's `task_id`, the URL), as it travels in the subject for events.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from events.core.bounds import ExitCode, Instant
from events.core.streams import positions, stream_name
from events.tasks.model import (
    Content,
    Count,
    FailureKind,
    Id,
    Ids,
    Millis,
    Outcome,
    OutputType,
    Percent,
    Priority,
    Rounds,
    TaskType,
    Text,
    Title,
)

# --- commands -------------------------------------------------------------------------------


class Command(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Create(Command, frozen=True, kw_only=True):
    title: Title
    project: Id | None = None
    description: Text = ""
    type: TaskType = "regular"
    priority: Priority = "P1"
    parent_id: Id | None = None
    depends_on: Ids = msgspec.field(default_factory=list)
    must_haves: Text = ""
    success_criteria: Text = ""
    assignee: Id | None = None
    max_rounds: Rounds | None = None
    not_before: Instant | None = None
    by: Id | None = None


class Claim(Command, frozen=True, kw_only=True):
    agent_id: Id


class Start(Command, frozen=True, kw_only=True):
    agent_id: Id


class Progress(Command, frozen=True, kw_only=True):
    agent_id: Id
    progress: Percent | None = None
    note: Text | None = None


class Submit(Command, frozen=True, kw_only=True):
    agent_id: Id
    summary: Text = ""


class Approve(Command, frozen=True, kw_only=True):
    by: Id
    note: Text = ""


class Reject(Command, frozen=True, kw_only=True):
    by: Id
    reason: Text = ""


class FixSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One fix subtask, as the seed's `create_fix_subtasks(parent, [{error, fix, ...}])`."""

    error: Text
    fix: Text = ""
    success_criteria: Text = ""


Fixes = Annotated[list[FixSpec], msgspec.Meta(max_length=100)]


class Fail(Command, frozen=True, kw_only=True):
    error: Text
    kind: FailureKind = "system"
    agent_id: Id | None = None
    # business errors: the fix subtasks; none given -> one fix named after the error
    fixes: Fixes = msgspec.field(default_factory=list)


class RequestFixes(Command, frozen=True, kw_only=True):
    fixes: Annotated[list[FixSpec], msgspec.Meta(min_length=1, max_length=100)]
    by: Id | None = None


class Block(Command, frozen=True, kw_only=True):
    reason: Text
    by: Id | None = None


class Unblock(Command, frozen=True, kw_only=True):
    by: Id | None = None
    note: Text = ""


class Cancel(Command, frozen=True, kw_only=True):
    by: Id | None = None
    reason: Text = ""


class Void(Command, frozen=True, kw_only=True):
    by: Id | None = None
    reason: Text = ""


class Release(Command, frozen=True, kw_only=True):
    reason: Text
    agent_id: Id | None = None  # when given, it must be the claimer
    by: Id | None = None


class Reopen(Command, frozen=True, kw_only=True):
    by: Id
    note: Text = ""


class Comment(Command, frozen=True, kw_only=True):
    author: Id
    body: Text


class AddOutput(Command, frozen=True, kw_only=True):
    agent_id: Id
    title: Title
    type: OutputType = "other"
    content: Content = ""
    content_path: Text | None = None
    summary: Text = ""


class CountRound(Command, frozen=True, kw_only=True):
    agent_id: Id | None = None


class ExtendRounds(Command, frozen=True, kw_only=True):
    """Raise the task's round limit (the COO or an operator); a task paused at the limit resumes."""

    max_rounds: Rounds
    by: Id


class StartAttempt(Command, frozen=True, kw_only=True):
    agent_id: Id
    session_id: Text | None = None
    continuation: Count = 0


class FinishAttempt(Command, frozen=True, kw_only=True):
    agent_id: Id
    outcome: Outcome
    exit_code: ExitCode | None = None
    transport: Text | None = None
    fallback_reason: Text | None = None
    duration_ms: Millis | None = None
    task_status_at_exit: Text | None = None
    error: Text | None = None


TaskCommand = (
    Create | Claim | Start | Progress | Submit | Approve | Reject | Fail | RequestFixes | Block
    | Unblock | Cancel | Void | Release | Reopen | Comment | AddOutput | CountRound | ExtendRounds | StartAttempt
    | FinishAttempt
)


# `cmd.tasks.<verb>` -> the command it carries (the request is `{"task_id": ..., **fields}`)
VERBS: dict[str, type] = {
    "create": Create, "claim": Claim, "start": Start, "progress": Progress, "submit": Submit,
    "approve": Approve, "reject": Reject, "fail": Fail, "request_fixes": RequestFixes,
    "block": Block, "unblock": Unblock, "cancel": Cancel, "void": Void, "release": Release,
    "reopen": Reopen, "comment": Comment, "add_output": AddOutput, "count_round": CountRound,
    "extend_rounds": ExtendRounds,
    "start_attempt": StartAttempt, "finish_attempt": FinishAttempt,
}


def written_position(verb: str, reply: dict[str, Any]) -> dict[str, int]:
    """`{stream: seq}` a read must include to see what the command `verb` answered with `reply`
    (`{"seq", "events": [{"subject", "seq", ...}]}`); an idempotent repeat writes nothing, and
    its aggregate's last seq is the position then."""
    written = positions((e["subject"], e["seq"]) for e in reply.get("events") or ())
    if not written and reply.get("seq"):
        written = {stream_name("mail" if verb.endswith("_mail") else "tasks"): reply["seq"]}
    return written
