"""What the watchdog knows: the fold of AGENTS, TASKS, RUNS and its own WATCHDOG decisions.

Agents and tasks are folded with their domains' own `evolve`, so the watchdog sees exactly
what every reader sees. On top it keeps what those states do not hold: when a task last moved
(claim, start, progress, output, round), who created it, each agent's last run log and open runs,
each task's finished runs (newest last), and the keys of the decisions already taken with the
number of recovery steps per task. Holding the decisions in the fold (not in memory) is what
makes a restarted watchdog continue the ladder where it was instead of starting it again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from events import agents, runs, tasks
from events.watchdog.model import BacklogNoticed, TimedOut, WatchdogEvent

MOVES = (
    tasks.TaskClaimed, tasks.TaskStarted, tasks.TaskProgressed, tasks.TaskSubmitted,
    tasks.TaskOutputAdded, tasks.TaskRoundCounted,
)
RUNS_KEPT = 50  # seed 002: the root-cause analysis reads the task's last 50 logs


@dataclass
class Fleet:
    agents: dict[str, agents.Agent] = field(default_factory=dict)
    board: tasks.Board = field(default_factory=tasks.Board)
    moved_at: dict[str, datetime] = field(default_factory=dict)
    creator: dict[str, str] = field(default_factory=dict)
    last_run_at: dict[str, datetime] = field(default_factory=dict)  # per agent
    open_runs: dict[str, str] = field(default_factory=dict)  # run id -> agent
    run_agent: dict[str, str] = field(default_factory=dict)
    run_task: dict[str, str] = field(default_factory=dict)
    task_runs: dict[str, deque[str]] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)
    steps: dict[str, int] = field(default_factory=dict)  # task -> recovery steps taken
    root_cause: dict[str, int] = field(default_factory=dict)  # task -> failures when it asked
    backlog: dict[str, tuple[int, bool]] = field(default_factory=dict)  # agent -> (notices, over)

    @property
    def tasks(self) -> dict[str, tasks.Task]:
        return self.board.tasks

    def apply(self, domain: str, aggregate: str, event: object, at: datetime, seq: int) -> None:
        match domain:
            case "agents":
                state = self.agents.get(aggregate) or agents.initial_state(aggregate)
                self.agents[aggregate], _ = agents.evolve(state, event, at)  # type: ignore[arg-type]
            case "tasks":
                self._task(aggregate, event, at, seq)
            case "runs":
                self._run(aggregate, event, at)
            case "watchdog" if isinstance(event, WatchdogEvent):
                self.decided.add(event.key)
                if isinstance(event, TimedOut) and event.task_id:
                    self.steps[event.task_id] = max(self.steps.get(event.task_id, 0), event.step)
                elif isinstance(event, BacklogNoticed):
                    n, _ = self.backlog.get(aggregate, (0, False))
                    self.backlog[aggregate] = (n + 1, event.count > event.limit)

    def _task(self, task_id: str, event: object, at: datetime, seq: int) -> None:
        state = self.board.get(task_id) or tasks.initial_state(task_id)
        state, reason = tasks.evolve(state, event, at, seq)  # type: ignore[arg-type]
        if reason is not None or not state.created:
            return
        self.board.put(state)
        if isinstance(event, tasks.TaskCreated):
            self.moved_at[task_id] = at
            if event.by:
                self.creator[task_id] = event.by
        elif isinstance(event, MOVES):
            self.moved_at[task_id] = at
        elif isinstance(event, tasks.TaskRootCauseRequested):
            self.root_cause[task_id] = event.failures

    def _run(self, run_id: str, event: object, at: datetime) -> None:
        if isinstance(event, runs.RunStarted):
            self.run_agent[run_id] = event.agent_id
            self.open_runs[run_id] = event.agent_id
            if event.task_id:
                self.run_task[run_id] = event.task_id
        agent = self.run_agent.get(run_id)
        if agent is None:
            return
        self.last_run_at[agent] = at
        if isinstance(event, runs.RunFinished):
            self.open_runs.pop(run_id, None)
            task = self.run_task.get(run_id)
            if task is not None:
                self.task_runs.setdefault(task, deque(maxlen=RUNS_KEPT)).append(run_id)

    # -- views the rules read -------------------------------------------------------------------

    def held_by(self, agent_id: str) -> list[tasks.Task]:
        return [
            t for t in self.tasks.values()
            if t.claimed_by == agent_id and t.status in ("claimed", "working")
        ]

    def last_seen(self, agent_id: str, task: tasks.Task) -> datetime | None:
        """The newest sign of life of the agent on this task: heartbeat, run log, claim."""
        a = self.agents.get(agent_id)
        marks = [a.last_heartbeat_at if a else None, self.last_run_at.get(agent_id), task.claimed_at]
        return max((m for m in marks if m is not None), default=None)

    def open_run(self, agent_id: str) -> str | None:
        return next((r for r, a in self.open_runs.items() if a == agent_id), None)
