"""The tasks aggregate: the agents' work queue (DESIGN §6), replacing a Postgres task table.

Invariants:
- the task id is the subject's aggregate id, never in the payload; fix subtasks are
  `FIX-<task>-NNN`, numbered on from the parent's own `fix_requested` history;
- statuses move `pending -> claimed -> working -> review -> done`, `review -> pending` (rejected);
  any open status may become `failed`, `blocked` or `cancelled`; `void` and `cancelled` and `done`
  are terminal; `requires_manual` waits for a person (`reopened`);
- exactly one claimer: a claim is refused while another agent holds the task, and a second
  `claimed` that races in through raw `nats pub` is a no-op with its reason;
- a claim needs every `depends_on` done, `not_before` passed, a parent that is not void/cancelled
  and no open subtask (the same predicate as "actionable", `queue.refusal`);
- a subtask cannot have subtasks (level 2 is the deepest);
- a system failure schedules a retry with backoff 1 s x 2^(n-1) (max 10 min) back to pending;
  a business failure creates fix subtasks and the parent waits in `fix_pending`; the third failure
  also asks for a root cause; the fifth escalates to `requires_manual` instead of retrying;
- rounds are counted; at 80 % of `max_rounds` one `round_warning`, at the limit `blocked`
  with reason `max_rounds`.

One decision is one list of `Emitted(task_id, event)`: fix subtasks are other aggregates, so the
command service must publish the whole list as ONE atomic batch on the TASKS stream (each message
on `tasks.<task_id>.<event>`; the first message carries the parent's expected last subject
sequence, every new subtask expects 0), so the parent's `fix_pending` and its subtasks appear
together or not at all. `decide` reads other tasks only through the `TaskView` it is given.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import assert_never

from events.tasks.commands import (
    AddOutput,
    Approve,
    Block,
    Cancel,
    Claim,
    Comment,
    CountRound,
    Create,
    ExtendRounds,
    Fail,
    FinishAttempt,
    FixSpec,
    Progress,
    Reject,
    Release,
    Reopen,
    RequestFixes,
    Start,
    StartAttempt,
    Submit,
    TaskCommand,
    Unblock,
    Void,
)
from events.tasks.model import (
    ACTIVE,
    MAX_ATTEMPTS,
    OPEN,
    ROOT_CAUSE_AT,
    ROUND_WARNING_RATIO,
    TERMINAL,
    AlreadyExists,
    Emitted,
    FixIdTooLong,
    InvalidDependency,
    InvalidTransition,
    NotClaimer,
    ParentClosed,
    SubtaskCannotHaveSubtasks,
    Task,
    TaskApproved,
    TaskAttemptFinished,
    TaskAttemptStarted,
    TaskBlocked,
    TaskCancelled,
    TaskClaimed,
    TaskCommented,
    TaskCreated,
    TaskEscalated,
    TaskEvent,
    TaskFailed,
    TaskFixRequested,
    TaskOutputAdded,
    TaskProgressed,
    TaskRejected,
    TaskReleased,
    TaskReopened,
    TaskRetryScheduled,
    TaskRootCauseRequested,
    TaskRoundCounted,
    TaskRoundsExtended,
    TaskRoundWarning,
    TaskStarted,
    TaskSubmitted,
    TaskUnblocked,
    TaskVoided,
    UnknownTask,
    backoff_s,
    fix_id,
)
from events.tasks.queue import (
    TaskView,
    refusal,
)

_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
FAILABLE = OPEN  # a task can fail from any open status
CANCELLABLE = OPEN | {"failed", "requires_manual"}
FIXABLE = OPEN | {"failed"}
BLOCKABLE = OPEN - {"blocked"}


def initial_state(task_id: str) -> Task:
    return Task(id=task_id)


# --- decide ---------------------------------------------------------------------------------


def decide(cmd: TaskCommand, state: Task, view: TaskView, now: datetime) -> list[Emitted]:
    """The events `cmd` causes, each addressed to its task; raises the rule it breaks.

    `view` answers questions about other tasks (dependencies, parent, children); `now` is the time
    of the decision (the service's clock). Returns [] when there is nothing to do.
    """
    if isinstance(cmd, Create):
        return _create(cmd, state, view)
    if not state.created:
        raise UnknownTask(f"task {state.id} does not exist")
    own = _own(state)
    match cmd:
        case Claim(agent_id=agent):
            if state.status in ACTIVE and state.claimed_by == agent:
                return []
            if (err := refusal(state, view, now, agent)) is not None:
                raise err
            return own(TaskClaimed(agent_id=agent))
        case Start(agent_id=agent):
            if state.status == "working" and state.claimed_by == agent:
                return []
            _held_by(state, agent, "claimed")
            return own(TaskStarted(agent_id=agent))
        case Progress(agent_id=agent):
            _held_by(state, agent, "claimed", "working")
            return own(TaskProgressed(agent_id=agent, progress=cmd.progress, note=cmd.note))
        case Submit(agent_id=agent, summary=summary):
            _held_by(state, agent, "working")
            return own(TaskSubmitted(agent_id=agent, summary=summary))
        case Approve(by=by, note=note):
            _status_in(state, "approved", "review")
            return own(TaskApproved(by=by, note=note))
        case Reject(by=by, reason=reason):
            _status_in(state, "rejected", "review")
            return own(TaskRejected(by=by, reason=reason))
        case Fail():
            return _fail(cmd, state, view, now)
        case RequestFixes(fixes=fixes, by=by):
            _status_in(state, "sent to fixing", *FIXABLE)
            return _fixes(state, view, fixes, by)
        case Block(reason=reason, by=by):
            if state.status == "blocked":
                return []
            _status_in(state, "blocked", *BLOCKABLE)
            return own(TaskBlocked(reason=reason, by=by))
        case Unblock(by=by, note=note):
            _status_in(state, "unblocked", "blocked")
            return own(TaskUnblocked(by=by, note=note))
        case Cancel(by=by, reason=reason):
            _status_in(state, "cancelled", *CANCELLABLE)
            return own(TaskCancelled(by=by, reason=reason))
        case Void(by=by, reason=reason):
            return [] if state.status == "void" else own(TaskVoided(by=by, reason=reason))
        case Release(reason=reason, agent_id=agent, by=by):
            _status_in(state, "released", "claimed", "working")
            if agent is not None and agent != state.claimed_by:
                raise NotClaimer(f"task {state.id} is claimed by {state.claimed_by}, not {agent}")
            return own(TaskReleased(reason=reason, by=by or agent))
        case Reopen(by=by, note=note):
            _status_in(state, "reopened", "failed", "requires_manual")
            return own(TaskReopened(by=by, note=note))
        case Comment(author=author, body=body):
            return own(TaskCommented(author=author, body=body))
        case AddOutput():
            return own(TaskOutputAdded(
                agent_id=cmd.agent_id, type=cmd.type, title=cmd.title, content=cmd.content,
                content_path=cmd.content_path, summary=cmd.summary,
            ))
        case CountRound(agent_id=agent):
            return _count_round(state, agent)
        case ExtendRounds(max_rounds=limit, by=by):
            _status_in(state, "given more rounds", *OPEN)
            if state.max_rounds is not None and limit <= state.max_rounds:
                raise InvalidTransition(f"task {state.id} already allows {state.max_rounds} rounds")
            out = own(TaskRoundsExtended(max_rounds=limit, by=by))
            if state.status == "blocked" and state.status_reason == "max_rounds":
                out += own(TaskUnblocked(by=by, note=f"rounds extended to {limit}"))
            return out
        case StartAttempt(agent_id=agent, session_id=session, continuation=cont):
            _held_by(state, agent, *ACTIVE)
            return own(TaskAttemptStarted(
                agent_id=agent, attempt=state.attempts + 1, session_id=session, continuation=cont
            ))
        case FinishAttempt():
            return own(TaskAttemptFinished(
                agent_id=cmd.agent_id, outcome=cmd.outcome, attempt=state.attempts,
                exit_code=cmd.exit_code, transport=cmd.transport,
                fallback_reason=cmd.fallback_reason, duration_ms=cmd.duration_ms,
                task_status_at_exit=cmd.task_status_at_exit, error=cmd.error,
            ))
        case _:
            assert_never(cmd)


def _own(state: Task):  # type: ignore[no-untyped-def]
    def emit(*events: TaskEvent) -> list[Emitted]:
        return [Emitted(state.id, e) for e in events]

    return emit


def _status_in(state: Task, verb: str, *allowed: str) -> None:
    if state.status not in allowed:
        raise InvalidTransition(f"task {state.id} is {state.status} and cannot be {verb}")


def _held_by(state: Task, agent: str, *allowed: str) -> None:
    if state.status not in allowed:
        raise InvalidTransition(
            f"task {state.id} is {state.status}, not {' or '.join(allowed)}"
        )
    if state.claimed_by != agent:
        raise NotClaimer(f"task {state.id} is claimed by {state.claimed_by}, not {agent}")


_CREATE_FIELDS = (
    "project", "title", "description", "type", "priority", "parent_id", "must_haves",
    "success_criteria", "assignee", "max_rounds", "not_before",
)


def _create(cmd: Create, state: Task, view: TaskView) -> list[Emitted]:
    if state.created:
        same = all(getattr(cmd, f) == getattr(state, f) for f in _CREATE_FIELDS)
        if same and tuple(dict.fromkeys(cmd.depends_on)) == state.depends_on:
            return []  # the same task again: a script that is run twice goes on
        raise AlreadyExists(f"task {state.id} already exists with other fields")
    level, root = 1, None
    if cmd.parent_id is not None:
        parent = view.get(cmd.parent_id)
        if parent is None or not parent.created:
            raise UnknownTask(f"parent task {cmd.parent_id} of {state.id} does not exist")
        if parent.parent_id is not None:
            raise SubtaskCannotHaveSubtasks(
                f"task {parent.id} is a subtask of {parent.parent_id} and cannot have subtasks"
            )
        if parent.status in TERMINAL:
            raise ParentClosed(f"task {state.id}: parent {parent.id} is {parent.status}")
        level, root = parent.level + 1, parent.root_id or parent.id
    if state.id in cmd.depends_on:
        raise InvalidDependency(f"task {state.id} cannot depend on itself")
    if missing := [d for d in cmd.depends_on if view.get(d) is None]:
        raise UnknownTask(f"task {state.id} depends on unknown tasks {', '.join(missing)}")
    return [Emitted(state.id, TaskCreated(
        title=cmd.title, project=cmd.project, description=cmd.description, type=cmd.type,
        priority=cmd.priority, parent_id=cmd.parent_id, level=level, root_id=root,
        depends_on=list(dict.fromkeys(cmd.depends_on)), must_haves=cmd.must_haves,
        success_criteria=cmd.success_criteria, assignee=cmd.assignee, max_rounds=cmd.max_rounds,
        not_before=cmd.not_before, by=cmd.by,
    ))]


def _fail(cmd: Fail, state: Task, view: TaskView, now: datetime) -> list[Emitted]:
    """The failure rules: retry with backoff, or fix subtasks; root cause at 3; escalate at 5."""
    _status_in(state, "failed", *FAILABLE)
    if cmd.agent_id is not None and state.status in ACTIVE and state.claimed_by != cmd.agent_id:
        raise NotClaimer(f"task {state.id} is claimed by {state.claimed_by}, not {cmd.agent_id}")
    n = state.retry_count + 1
    out = [Emitted(state.id, TaskFailed(
        error=cmd.error, kind=cmd.kind, agent_id=cmd.agent_id, failures=n
    ))]
    if n == ROOT_CAUSE_AT:
        out.append(Emitted(state.id, TaskRootCauseRequested(failures=n, last_error=cmd.error)))
    if n >= MAX_ATTEMPTS:
        reason = f"{n} failures, the last: {cmd.error}"
        return [*out, Emitted(state.id, TaskEscalated(reason=reason[:20_000]))]
    if cmd.kind == "business" and state.parent_id is None:
        return [*out, *_fixes(state, view, cmd.fixes or [FixSpec(error=cmd.error)], cmd.agent_id)]
    # system errors, and business errors of subtasks (which cannot have subtasks): retry later
    delay = backoff_s(n)
    return [*out, Emitted(state.id, TaskRetryScheduled(
        failures=n, delay_s=delay, not_before=now + timedelta(seconds=delay)
    ))]


def _fixes(state: Task, view: TaskView, fixes: list[FixSpec], by: str | None) -> list[Emitted]:
    """`FIX-<task>-NNN` subtasks numbered on from the parent's history, skipping taken ids."""
    if state.parent_id is not None:
        raise SubtaskCannotHaveSubtasks(
            f"task {state.id} is a subtask of {state.parent_id} and cannot have subtasks"
        )
    out: list[Emitted] = []
    n = len(state.fix_ids)
    for spec in fixes:
        n += 1
        while view.get(fid := fix_id(state.id, n)) is not None:
            n += 1
        if not _ID.fullmatch(fid):
            raise FixIdTooLong(f"fix subtask id {fid} of task {state.id} exceeds 128 characters")
        title = f"Fix {state.id}: {spec.error}"[:500]
        out.append(Emitted(fid, TaskCreated(
            title=title, project=state.project, description=spec.fix, type="fix",
            priority=state.priority, parent_id=state.id, level=state.level + 1,
            root_id=state.root_id or state.id, success_criteria=spec.success_criteria, by=by,
        )))
    return [*out, Emitted(state.id, TaskFixRequested(fix_ids=[e.task_id for e in out]))]


def round_warning_at(max_rounds: int) -> int:
    return math.ceil(max_rounds * ROUND_WARNING_RATIO)


def _count_round(state: Task, agent: str | None) -> list[Emitted]:
    _status_in(state, "counting rounds", *ACTIVE)
    n = state.rounds + 1
    out = [Emitted(state.id, TaskRoundCounted(round=n, agent_id=agent))]
    if (limit := state.max_rounds) is None:
        return out
    if n >= limit:
        out.append(Emitted(state.id, TaskBlocked(reason="max_rounds", by=agent)))
    elif n == round_warning_at(limit):
        out.append(Emitted(state.id, TaskRoundWarning(round=n, max_rounds=limit)))
    return out
