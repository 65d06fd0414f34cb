"""How a task's state follows from its events: `evolve`, total and pure.

An event that does not fit the state (a second claim raced in through raw `nats pub`) leaves the
state unchanged and says why; every reader records that reason identically."""

from __future__ import annotations

from datetime import datetime

from msgspec.structs import replace

from events.tasks.decide import BLOCKABLE, CANCELLABLE, FAILABLE, FIXABLE
from events.tasks.model import (
    ACTIVE,
    TERMINAL,
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
)

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
        case TaskRoundsExtended():
            if s.status in TERMINAL:
                return s, _refused(s, e)
            return replace(s, max_rounds=e.max_rounds), None
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
