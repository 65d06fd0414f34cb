"""The watchdog's rules: `decide(fleet, now, policy) -> decisions`, pure.

Invariants:
- every decision is an event with a deterministic key; a key already in the fold is never decided
  again, so running `decide` twice on the same fleet, or after a restart, repeats nothing;
- the silence ladder goes in order, one step per pass: suspected (one extra heartbeat wake) at
  the class's stall warning, then at its recovery threshold a recovery step — the task's first
  timeout releases it, the second releases it and tells the COO, the third blocks it and tells
  the owner (v2.0 template); one step per silence (or stagnation) episode; a task in progress
  that has not moved takes the same ladder (`why="stagnation"`) even while the agent
  heartbeats: suspected at the stall warning, a recovery step at the class's task timeout;
- the stuck rule (seed 002) takes precedence over the ladder when the agent has an open run: no
  heartbeat and no run log for `stuck_s` -> stuck (kill, release, `FIX-<task>-STUCK`);
- rounds: the heartbeat's `round` on the agent's current task counts against the task's own
  limit or the class's; 80 % warns once, the limit pauses once, per limit (a raised limit warns
  and pauses anew);
- a dependency open past the wait threshold notifies its holder once per dependency status; a
  cancelled or void dependency notifies the COO at once;
- a backlog above the class limit is noticed once per crossing, and once when it clears;
- `root_cause_requested` wakes the analyst once per task, with the task's last 50 run ids;
- each registered agent's class cron wakes it once per due time, or records why it skipped
  (`events.watchdog.schedule`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from events import tasks
from events.agents import Agent
from events.watchdog.classes import ClassRules, for_agent
from events.watchdog.fleet import Fleet
from events.watchdog.model import (
    AnalystWoken,
    BacklogNoticed,
    DependencyWaited,
    RoundPaused,
    RoundWarned,
    Stuck,
    Suspected,
    TimedOut,
    WatchdogEvent,
)
from events.watchdog.schedule import scheduled

BLOCK_AT_STEP = 3
DEAD_DEPENDENCY = ("cancelled", "void")


class Policy(NamedTuple):
    classes: Mapping[str, ClassRules]
    coo: str = "coo"
    analyst: str | None = None
    tz: str = "Asia/Shanghai"  # the cron wakes' time zone
    cron: bool = True  # scheduled heartbeat wakes on or off


class Decision(NamedTuple):
    agent_id: str  # the subject's aggregate: watchdog.<agent_id>.<event>
    event: WatchdogEvent

    @property
    def key(self) -> str:
        return self.event.key


def rules_of(fleet: Fleet, agent_id: str | None, policy: Policy) -> ClassRules:
    a = fleet.agents.get(agent_id) if agent_id else None
    if a is None:
        return for_agent(policy.classes, None)
    return for_agent(
        policy.classes, a.agent_class, heartbeat_interval_s=a.heartbeat_interval_s,
        stall_warning_s=a.stall_warning_s, recovery_s=a.recovery_s, max_rounds=a.max_rounds,
        dependency_wait_s=a.dependency_wait_s,
    )


def decide(fleet: Fleet, now: datetime, policy: Policy) -> list[Decision]:
    out: list[Decision] = []
    for agent_id in sorted({t.claimed_by for t in fleet.tasks.values() if t.claimed_by}):
        for task in sorted(fleet.held_by(agent_id), key=lambda t: t.id):
            out += _holding(fleet, agent_id, task, now, policy)
    for agent in sorted(fleet.agents.values(), key=lambda a: a.id):
        if policy.cron and (wake := scheduled(agent, rules_of(fleet, agent.id, policy), now, policy.tz)):
            out.append(Decision(agent.id, wake))
        out += _rounds(fleet, agent, policy)
        out += _backlog(fleet, agent, now, policy)
    for task in sorted(fleet.tasks.values(), key=lambda t: t.id):
        out += _dependencies(fleet, task, now, policy)
        out += _root_cause(fleet, task, policy)
    return [d for d in out if d.key not in fleet.decided]


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def _holding(fleet: Fleet, agent: str, task: tasks.Task, now: datetime, policy: Policy) -> list[Decision]:
    rules = rules_of(fleet, agent, policy)
    seen = fleet.last_seen(agent, task)
    if seen is None:
        return []
    silent = int((now - seen).total_seconds())
    run = fleet.open_run(agent)
    if run is not None:
        if silent < rules.stuck_s:
            return []
        fix = f"FIX-{task.id}-STUCK"
        return [Decision(agent, Stuck(
            key=f"watchdog:stuck:{task.id}:{_epoch(seen)}", task_id=task.id, run_id=run,
            fix_task_id=fix, silent_s=silent,
            cause=f"run {run} of {agent} wrote no log line and no heartbeat for {silent}s "
                  f"(stuck after {rules.stuck_s}s)",
        ))]
    suspected = f"watchdog:suspected:{agent}:{task.id}:{_epoch(seen)}"
    if silent >= rules.stall_warning_s and suspected not in fleet.decided:
        return [Decision(agent, Suspected(
            key=suspected, task_id=task.id, silent_s=silent,
            cause=f"{agent} holds {task.id} and sent no heartbeat for {silent}s "
                  f"(warning after {rules.stall_warning_s}s)",
        ))]
    if silent >= rules.recovery_s:
        return [_timed_out(fleet, agent, task, seen, "silence", rules, policy,
                           f"{agent} silent for {silent}s holding {task.id} (recovery after "
                           f"{rules.recovery_s}s)")]
    if silent >= rules.stall_warning_s:
        return []  # a silent agent is on the silence ladder; its task is not moving either
    moved = fleet.moved_at.get(task.id)
    if moved is None or (idle := int((now - moved).total_seconds())) < rules.stall_warning_s:
        return []
    suspected = f"watchdog:suspected:{agent}:{task.id}:stagnation:{_epoch(moved)}"
    if suspected not in fleet.decided:
        return [Decision(agent, Suspected(
            key=suspected, task_id=task.id, silent_s=idle, why="stagnation",
            cause=f"{task.id} held by {agent} has not moved for {idle}s "
                  f"(warning after {rules.stall_warning_s}s)",
        ))]
    if idle >= rules.task_timeout_s:
        return [_timed_out(fleet, agent, task, moved, "stagnation", rules, policy,
                           f"{task.id} has not moved for {idle}s (timeout {rules.task_timeout_s}s)")]
    return []


def _timed_out(
    fleet: Fleet, agent: str, task: tasks.Task, since: datetime, why: str, rules: ClassRules,
    policy: Policy, cause: str,
) -> Decision:
    step = fleet.steps.get(task.id, 0) + 1
    owner = fleet.creator.get(task.id)
    names = {"coo": policy.coo, "creator": owner, "owner": owner}
    if step == 1:
        notify = [names[n] for n in rules.notify]
    elif step < BLOCK_AT_STEP:
        notify = [policy.coo, *(names[n] for n in rules.notify)]
    else:
        notify = [owner or policy.coo, policy.coo]
    return Decision(agent, TimedOut(
        key=f"watchdog:timed_out:{task.id}:{why}:{_epoch(since)}", task_id=task.id,
        why=why,  # type: ignore[arg-type]
        step=step, action="block" if step >= BLOCK_AT_STEP else "release",
        notify=sorted({n for n in notify if n}), cause=f"{cause}; step {step}",
    ))


def _rounds(fleet: Fleet, agent: Agent, policy: Policy) -> list[Decision]:
    task = fleet.tasks.get(agent.current_task or "")
    if task is None or agent.round is None or task.status not in tasks.ACTIVE:
        return []
    limit = task.max_rounds or rules_of(fleet, agent.id, policy).max_rounds
    n = agent.round
    if n >= limit:
        owner = fleet.creator.get(task.id)
        return [Decision(agent.id, RoundPaused(
            key=f"watchdog:round_paused:{task.id}:{limit}", task_id=task.id, round=n,
            max_rounds=limit, notify=sorted({policy.coo, *([owner] if owner else [])}),
            cause=f"round {n} of {task.id} reached the limit {limit}",
        ))]
    warn = math.ceil(limit * rules_of(fleet, agent.id, policy).round_warning_ratio)
    if n >= warn:
        return [Decision(agent.id, RoundWarned(
            key=f"watchdog:round_warned:{task.id}:{limit}", task_id=task.id, round=n,
            max_rounds=limit, cause=f"round {n} of {task.id} is past {warn} of {limit}",
        ))]
    return []


def _backlog(fleet: Fleet, agent: Agent, now: datetime, policy: Policy) -> list[Decision]:
    limit = rules_of(fleet, agent.id, policy).backlog_limit
    count = sum(
        1 for t in fleet.tasks.values()
        if t.assignee == agent.id and tasks.is_actionable(t, fleet.board, now, agent.id)
    )
    notices, over = fleet.backlog.get(agent.id, (0, False))
    if (count > limit) == over:
        return []
    what = "above" if count > limit else "back within"
    return [Decision(agent.id, BacklogNoticed(
        key=f"watchdog:backlog:{agent.id}:{notices + 1}", count=count, limit=limit,
        cause=f"{agent.id} has {count} actionable tasks, {what} the limit {limit}",
    ))]


def _dependencies(fleet: Fleet, task: tasks.Task, now: datetime, policy: Policy) -> list[Decision]:
    if task.status != "pending" or not task.depends_on or task.created_at is None:
        return []
    out = []
    waited = int((now - task.created_at).total_seconds())
    for dep_id in task.depends_on:
        dep = fleet.tasks.get(dep_id)
        status = dep.status if dep else "unknown"
        if status == "done":
            continue
        holder = (dep.claimed_by or dep.assignee) if dep else None
        agent = task.assignee or holder
        if status in DEAD_DEPENDENCY:
            notify, why = [policy.coo], f"dependency {dep_id} of {task.id} is {status}"
        elif waited >= rules_of(fleet, agent, policy).dependency_wait_s:
            notify = [holder or policy.coo]
            why = f"{task.id} has waited {waited}s for {dep_id} ({status})"
        else:
            continue
        out.append(Decision(agent or policy.coo, DependencyWaited(
            key=f"watchdog:dependency:{task.id}:{dep_id}:{status}", task_id=task.id,
            dependency=dep_id, dependency_status=status, notify=notify, cause=why,
        )))
    return out


def _root_cause(fleet: Fleet, task: tasks.Task, policy: Policy) -> list[Decision]:
    if not task.root_cause_requested or policy.analyst is None:
        return []
    run_ids = list(fleet.task_runs.get(task.id, ()))
    return [Decision(policy.analyst, AnalystWoken(
        key=f"watchdog:analyst:{task.id}", task_id=task.id, analyst=policy.analyst,
        failures=fleet.root_cause.get(task.id, task.retry_count), run_ids=run_ids,
        cause=f"{task.id} asked for a root-cause analysis ({task.last_error or 'no error text'})",
    ))]
