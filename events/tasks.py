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
  and no open subtask (the same predicate as "actionable", `task_queue.refusal`);
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

from msgspec.structs import replace

from events.task_commands import *  # the commands
from events.task_model import *  # the language: events, state, errors
from events.task_queue import (  # noqa: F401  (re-exported: the queue is part of the domain)
    Board,
    TaskView,
    actionable,
    is_actionable,
    open_children,
    open_dependencies,
    order_key,
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


def _create(cmd: Create, state: Task, view: TaskView) -> list[Emitted]:
    if state.created:
        raise AlreadyExists(f"task {state.id} already exists")
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


# --- evolve ---------------------------------------------------------------------------------


def evolve(state: Task, event: TaskEvent, at: datetime, seq: int = 0) -> tuple[Task, str | None]:
    """Fold one event; returns the new state and, when the event changed nothing, why.

    Total: any registered event in any state returns (never raises). Only this task's own rules
    are checked here; rules across tasks (dependencies, parents) are the command path's.
    `seq` is the stream sequence, kept as the creation order.
    """
    if not state.created and not isinstance(event, TaskCreated):
        return state, f"task {state.id} does not exist"
    new, reason = _apply(state, event, at, seq)
    if reason is not None:
        return state, reason
    return replace(new, updated_at=at), None


def _refused(state: Task, event: TaskEvent) -> str:
    return f"task {state.id} is {state.status}: {event.name} does not apply"


def _apply(s: Task, e: TaskEvent, at: datetime, seq: int) -> tuple[Task, str | None]:
    match e:
        case TaskCreated():
            if s.created:
                return s, f"task {s.id} already exists"
            return replace(
                s, created=True, status="pending", title=e.title, project=e.project,
                description=e.description, type=e.type, priority=e.priority,
                parent_id=e.parent_id, level=e.level, root_id=e.root_id,
                depends_on=tuple(e.depends_on), must_haves=e.must_haves,
                success_criteria=e.success_criteria, assignee=e.assignee,
                max_rounds=e.max_rounds, not_before=e.not_before, created_seq=seq, created_at=at,
            ), None
        case TaskClaimed():
            if s.status in ACTIVE:
                return s, f"task {s.id} is already claimed by {s.claimed_by}"
            if s.status not in ("pending", "fix_pending"):
                return s, _refused(s, e)
            return replace(s, status="claimed", claimed_by=e.agent_id, claimed_at=at,
                           status_reason=None), None
        case TaskStarted():
            return _by_claimer(s, e, e.agent_id, ("claimed",), status="working", started_at=at)
        case TaskProgressed():
            progress = s.progress if e.progress is None else e.progress
            return _by_claimer(s, e, e.agent_id, ("claimed", "working"), progress=progress)
        case TaskSubmitted():
            return _by_claimer(s, e, e.agent_id, ("working",), status="review")
        case TaskApproved():
            return _when(s, e, ("review",), status="done", finished_at=at)
        case TaskRejected():
            return _when(s, e, ("review",), status="pending", claimed_by=None,
                         status_reason=e.reason or "rejected")
        case TaskFailed():
            return _when(s, e, FAILABLE, status="failed", retry_count=s.retry_count + 1,
                         last_error=e.error, claimed_by=None, finished_at=at)
        case TaskRetryScheduled():
            return _when(s, e, ("failed",), status="pending", not_before=e.not_before,
                         status_reason="retry")
        case TaskEscalated():
            return _when(s, e, CANCELLABLE - {"requires_manual"}, status="requires_manual",
                         claimed_by=None, status_reason=e.reason)
        case TaskFixRequested():
            return _when(s, e, FIXABLE, status="fix_pending", claimed_by=None,
                         fix_ids=s.fix_ids + tuple(e.fix_ids))
        case TaskRootCauseRequested():
            return replace(s, root_cause_requested=True), None
        case TaskBlocked():
            return _when(s, e, BLOCKABLE, status="blocked", resume_status=s.status,
                         status_reason=e.reason)
        case TaskUnblocked():
            rounds = 0 if s.status_reason == "max_rounds" else s.rounds
            return _when(s, e, ("blocked",), status=s.resume_status or "pending",
                         resume_status=None, status_reason=None, rounds=rounds)
        case TaskCancelled():
            return _when(s, e, CANCELLABLE, status="cancelled", claimed_by=None, finished_at=at,
                         status_reason=e.reason or None)
        case TaskVoided():
            if s.status == "void":
                return s, f"task {s.id} is already void"
            return replace(s, status="void", claimed_by=None, finished_at=at,
                           status_reason=e.reason or None), None
        case TaskReleased():
            return _when(s, e, ("claimed", "working"), status="pending", claimed_by=None,
                         status_reason=e.reason)
        case TaskReopened():
            return _when(s, e, ("failed", "requires_manual"), status="pending", retry_count=0,
                         root_cause_requested=False, status_reason=None, finished_at=None)
        case TaskCommented():
            return replace(s, comments=s.comments + 1), None
        case TaskOutputAdded():
            return replace(s, outputs=s.outputs + 1), None
        case TaskRoundCounted():
            if s.status in TERMINAL:
                return s, _refused(s, e)
            return replace(s, rounds=s.rounds + 1), None
        case TaskRoundWarning() | TaskAttemptFinished():
            return s, None
        case TaskAttemptStarted():
            return replace(s, attempts=s.attempts + 1), None
        case _:
            return s, f"unhandled event {type(e).__name__}"


def _when(s: Task, e: TaskEvent, allowed: frozenset[str] | tuple[str, ...], **changes: object
          ) -> tuple[Task, str | None]:
    if s.status not in allowed:
        return s, _refused(s, e)
    return replace(s, **changes), None


def _by_claimer(s: Task, e: TaskEvent, agent: str, allowed: tuple[str, ...], **changes: object
                ) -> tuple[Task, str | None]:
    if s.status in allowed and s.claimed_by != agent:
        return s, f"task {s.id} is claimed by {s.claimed_by}, not {agent}"
    return _when(s, e, allowed, **changes)
