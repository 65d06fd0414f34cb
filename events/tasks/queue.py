"""Which tasks are actionable, and in which order: pure functions over task states.

A claim and the actionable list ask the same question (`refusal`), so a task offered to an agent is
a task it can claim, and a refused claim names exactly what holds it back:
- status `pending`, or `fix_pending` whose subtasks are all done/void;
- every `depends_on` done; `not_before` passed; the parent neither void nor cancelled;
- no open subtask (a parent waits for its children);
- when the task names an assignee, only that agent.

Order (the seed's ORDER BY): type fix < regular < creative, then P0 < P1 < P2, then level
descending (subtasks first), then creation sequence (oldest first).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from events.tasks.model import (
    AssignedToOther,
    DependenciesOpen,
    NotClaimable,
    NotDue,
    ParentClosed,
    SubtasksOpen,
    Task,
    TaskRuleError,
)

TYPE_RANK = {"fix": 0, "regular": 1, "creative": 2}
PRIORITY_RANK = {"P0": 0, "P1": 1, "P2": 2}
CHILD_CLOSED = frozenset({"done", "void"})


class TaskView(Protocol):
    """What a decision may know about other tasks; the command service's fold implements it."""

    def get(self, task_id: str) -> Task | None: ...

    def children(self, task_id: str) -> Sequence[Task]: ...


class Board:
    """A `TaskView` over a set of task states, with a parent -> children index.

    `put` updates it in place: the owner (a service's fold, a test) keeps it current; the pure
    functions here only read it.
    """

    def __init__(self, tasks: Iterable[Task] = ()) -> None:
        self._tasks: dict[str, Task] = {}
        self._children: dict[str, dict[str, None]] = {}
        for task in tasks:
            self.put(task)

    def put(self, task: Task) -> None:
        self._tasks[task.id] = task
        if task.parent_id is not None:
            self._children.setdefault(task.parent_id, {})[task.id] = None

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def children(self, task_id: str) -> Sequence[Task]:
        return [self._tasks[c] for c in self._children.get(task_id, ())]

    @property
    def tasks(self) -> Mapping[str, Task]:
        return self._tasks


def open_dependencies(task: Task, view: TaskView) -> list[str]:
    """Ids of dependencies that are not done (unknown ids count as open)."""
    return [d for d in task.depends_on if (dep := view.get(d)) is None or dep.status != "done"]


def open_children(task: Task, view: TaskView) -> list[str]:
    return [c.id for c in view.children(task.id) if c.status not in CHILD_CLOSED]


def refusal(task: Task, view: TaskView, now: datetime, agent_id: str | None = None) -> TaskRuleError | None:
    """Why `agent_id` may not claim `task` now, or None when it may."""
    if task.status in ("claimed", "working", "review"):
        return NotClaimable(f"task {task.id} is claimed by {task.claimed_by}")
    if task.status not in ("pending", "fix_pending"):
        return NotClaimable(f"task {task.id} is {task.status}")
    if agent_id is not None and task.assignee is not None and task.assignee != agent_id:
        return AssignedToOther(f"task {task.id} is assigned to {task.assignee}")
    if deps := open_dependencies(task, view):
        return DependenciesOpen(f"task {task.id} waits for {', '.join(deps)}")
    if kids := open_children(task, view):
        return SubtasksOpen(f"task {task.id} waits for its subtasks {', '.join(kids)}")
    parent = view.get(task.parent_id) if task.parent_id is not None else None
    if parent is not None and parent.status in ("void", "cancelled"):
        return ParentClosed(f"task {task.id}: parent {parent.id} is {parent.status}")
    if task.not_before is not None and task.not_before > now:
        return NotDue(f"task {task.id} is not due before {task.not_before.isoformat()}")
    return None


def is_actionable(task: Task, view: TaskView, now: datetime, agent_id: str | None = None) -> bool:
    return task.created and refusal(task, view, now, agent_id) is None


def order_key(task: Task) -> tuple[int, int, int, int]:
    return (
        TYPE_RANK.get(task.type, 3),
        PRIORITY_RANK.get(task.priority, 3),
        -task.level,
        task.created_seq,
    )


def actionable(
    view: Board, now: datetime, agent_id: str | None = None, limit: int | None = None
) -> list[Task]:
    """Actionable tasks of the board, best first (for `agent_id` when given)."""
    found = sorted(
        (t for t in view.tasks.values() if is_actionable(t, view, now, agent_id)), key=order_key
    )
    return found if limit is None else found[:limit]
