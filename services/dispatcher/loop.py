"""The dispatcher: wakes idle agents that have actionable work or unread mail (DESIGN §5).

Every `dispatch_interval_s` it asks the projector for the agents (`agents.list`) and, for each
agent that is idle, not cooling down and below its concurrency limit, for its actionable tasks
(`tasks.actionable`). It claims the first it can (`cmd.tasks.claim`; a lost race tries the next),
records the attempt (`cmd.tasks.start_attempt`) and wakes the agent the configured way:

- `command`: runs `dispatch_command` (placeholders `{agent_id}`, `{task_id}`, `{message}`,
  `{session_id}`; split with shlex first, each argument filled in, never a shell), watches it
  within `agent_timeout_s` up to `max_monitor_timeouts` times, classifies the exit
  (`events.tasks.attempts.classify`), records `attempt_finished` and applies the follow-up: continue the
  same session on `gateway_timeout` (at most 3 times), release the task and cool the agent down on
  `api_error`, fail it where the rules say so, kill it when it outlived the limit. With
  `dispatch_session_file` set, each timeout also reads the agent's session state
  (`services.dispatcher.session`): a session stuck on a dead lock is revived (set idle) the first
  time and its task released for a later dispatch, and fails `session_stuck` the second time in a
  row; a compacting session is waited for without counting, at most `max_monitor_timeouts` more
  times, then `compact_failed`;
- `nats`: publishes the wake on core NATS `wake.<agent_id>` (no stream stores it) for runtimes
  that subscribe; they report the attempt themselves;
- `webhook`: POSTs the wake as JSON to `dispatch_webhook_url`.

Each wake is recorded as `agents.<id>.woken`. Policy decisions written as events carry
deterministic `Nats-Msg-Id`s (`dispatch:<kind>:<task>:<attempt>`), and `attempt_finished` is not
recorded twice for one attempt (the task's history is checked first), so a restarted dispatcher
does not repeat them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS
from opentelemetry import trace

from events import tasks
from events.agents import AgentCooldownEnded, AgentWoken
from events.core.client import EventClient
from events.tasks.attempts import MAX_CONTINUATIONS
from projections.runtime.protocol import QueryClient, QueryError
from services.dispatcher import kill, policy, recovery, runlog
from services.dispatcher import session as session_file
from services.dispatcher.outcome import Settling, settle
from services.dispatcher.run import CommandRefused, Exit, TaskCommands, task_history, watch
from services.dispatcher.wake import WakeFailed, Waker
from services.runtime.connection import close_quietly
from services.settings import Settings

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
ACTIONABLE_LIMIT = 5


class Dispatcher:
    def __init__(
        self, settings: Settings, nc: NATS, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        self.mode = settings.dispatch_mode
        if self.mode == "command":
            policy.check_template(settings.dispatch_command or "")
        self.nc = nc
        self.events = EventClient(nc, timeout=settings.request_timeout_s)
        self.commands = TaskCommands(nc, timeout=settings.request_timeout_s)
        self.queries = QueryClient(nc, settings.projector_name, timeout=settings.query_timeout_s)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.running: dict[str, int] = {}
        self.watched: set[asyncio.Task[Any]] = set()
        self.mail_woken: dict[str, int] = {}
        # mail runs (`mail:<agent>`): stuck sessions in a row (a task's count is read from its
        # events, `stuck_in_a_row`, so it survives a restart); per task or mail run: compaction
        # waits of the current dispatch, across its continuations
        self.stuck: dict[str, int] = {}
        self.compact_waits: dict[str, int] = {}
        self.processes = kill.Processes()
        self.waker = Waker(self.mode, nc, settings.dispatch_webhook_url, settings.request_timeout_s)

    # -- the loop --------------------------------------------------------------------------

    async def tick(self) -> list[str]:
        """One pass over the agents; returns the ids of the tasks claimed (mail wakes: `mail:<agent>`)."""
        now = self.clock()
        agents = (await self.queries.query("agents", "list")).records()
        for a in agents:
            if policy.cooldown_expired(a, now):
                until = a["cooldown_until"]
                await self.events.publish(
                    a["id"],
                    AgentCooldownEnded(reason="expired"),
                    msg_id=f"dispatch:cooldown_ended:{a['id']}:{until}",
                )
        woke = []
        for agent in policy.wakeable(agents, self.running, now):
            rows = (
                await self.queries.query("tasks", "actionable", agent=agent, limit=ACTIONABLE_LIMIT)
            ).records()
            for row in rows:
                if await self.claim(agent, row["id"]):
                    self._spawn(self.dispatch(agent, row))
                    woke.append(row["id"])
                    break
            else:
                if await self._mail(agent):
                    woke.append(f"mail:{agent}")
        return woke

    async def claim(self, agent: str, task_id: str) -> bool:
        try:
            await self.commands.send("claim", task_id, agent_id=agent)
        except CommandRefused as exc:
            log.info("dispatch: %s cannot claim %s: %s", agent, task_id, exc)
            return False
        self.running[agent] = self.running.get(agent, 0) + 1
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.watched.add(task)
        task.add_done_callback(self.watched.discard)

    async def _mail(self, agent: str) -> bool:
        try:
            unread = policy.unread_mail(
                (await self.queries.query("tasks", "inbox", agent=agent)).records()
            )
        except QueryError as exc:
            log.warning("dispatch: inbox of %s unavailable: %s", agent, exc)
            return False
        if unread == 0 or self.mail_woken.get(agent) == unread:
            return False
        self.mail_woken[agent] = unread
        message = policy.mail_prompt(agent, unread, self.settings.http_url)
        session = str(uuid.uuid4())
        if self.mode == "command":
            self.running[agent] = self.running.get(agent, 0) + 1
            self._spawn(self._mail_run(agent, session, message))
        else:
            await self.wake(agent, None, session, message)
        await self.events.publish(
            agent, AgentWoken(via=self.mode, session_id=session, reason="mail")
        )  # type: ignore[arg-type]
        return True

    async def _mail_run(self, agent: str, session: str, message: str) -> None:
        try:
            await self._watch(agent, "", session, message)
        finally:
            self.compact_waits.pop(f"mail:{agent}", None)
            self.running[agent] -= 1

    # -- one task: claim done, attempts until a follow-up other than `continue` -------------

    async def dispatch(self, agent: str, task: dict[str, Any]) -> str | None:
        """Run attempts of `task` (already claimed by `agent`); returns the last outcome
        (None outside the command mode, where the runtime reports for itself)."""
        tid = task["id"]
        session, continuation = str(uuid.uuid4()), 0
        try:
            while True:
                with _tracer.start_as_current_span(
                    "dispatch",
                    attributes={
                        "agentledger.agent_id": agent,
                        "agentledger.task_id": tid,
                        "agentledger.session_id": session,
                        "agentledger.continuation": continuation,
                    },
                ) as span:
                    started = await self.commands.send(
                        "start_attempt",
                        tid,
                        agent_id=agent,
                        session_id=session,
                        continuation=continuation,
                    )
                    attempt = int(started["task"]["attempts"])
                    message = policy.task_prompt(
                        task,
                        agent,
                        self.settings.http_url,
                        continuation=continuation,
                        max_continuations=MAX_CONTINUATIONS,
                    )
                    woken = AgentWoken(
                        via=self.mode,  # type: ignore[arg-type]
                        task_id=tid,
                        session_id=session,
                        continuation=continuation,
                        reason="task",
                    )
                    woken_id = policy.decision_id("woken", tid, attempt)
                    try:
                        if self.mode != "command":
                            await self.wake(agent, tid, session, message)
                            await self.events.publish(agent, woken, msg_id=woken_id)
                            return None
                        await self.events.publish(agent, woken, msg_id=woken_id)
                        run = runlog.AttemptRun(
                            self.events, runlog.run_id(tid, attempt, continuation), agent, tid, attempt
                        )

                        async def spawned(pid: int, run: runlog.AttemptRun = run) -> None:
                            self.processes.add(agent, pid)
                            await run.started(pid)

                        done = await self._watch(agent, tid, session, message, spawned, run.line)
                    except (OSError, WakeFailed) as exc:  # nobody runs it: give the task back
                        log.error("dispatch: waking %s for %s failed: %s", agent, tid, exc)
                        await self.commands.send(
                            "release",
                            tid,
                            msg_id=policy.decision_id("release", tid, attempt),
                            reason=f"wake_failed: {exc}"[:2000],
                            agent_id=agent,
                        )
                        return "wake_failed"
                    outcome = await self._finish(
                        agent, tid, attempt, started["seq"], done, continuation
                    )
                    await run.finished(outcome, done)
                    span.set_attribute(  # only a gateway timeout continues
                        "agentledger.outcome",
                        "gateway_timeout" if outcome == "continue" else outcome,
                    )
                if outcome != "continue":
                    return outcome
                continuation += 1
        except CommandRefused as exc:
            log.error("dispatch: %s on %s stopped: %s", agent, tid, exc)
            return None
        finally:
            self.compact_waits.pop(tid, None)
            self.running[agent] -= 1

    async def _watch(
        self, agent: str, tid: str, session: str, message: str,
        on_spawn: Callable[[int], Awaitable[None]] | None = None,
        on_output: Callable[[str], Awaitable[None]] | None = None,
    ) -> Exit:
        argv = policy.command_line(
            self.settings.dispatch_command or "",
            agent_id=agent,
            task_id=tid,
            session_id=session,
            message=message,
        )
        key = tid or f"mail:{agent}"
        path = self._session_path(agent)
        done = await watch(
            argv,
            timeout_s=self.settings.agent_timeout_s,
            max_monitor_timeouts=self.settings.max_monitor_timeouts,
            session=(lambda: session_file.read_state(path, agent)) if path else None,
            stuck_count=await self.stuck_in_a_row(tid) if tid else self.stuck.get(key, 0),
            compact_waits=self.compact_waits.get(key, 0),
            on_spawn=on_spawn,
            on_output=on_output,
            follow_s=runlog.FOLLOW_S,
        )
        self.compact_waits[key] = done.compact_waits
        if done.verdict == "revive" and path is not None:
            self.stuck[key] = self.stuck.get(key, 0) + 1
            revived = await asyncio.to_thread(session_file.revive, path, agent)
            log.warning(
                "dispatch: %s's session was stuck on a dead lock (%s): %s",
                agent,
                key,
                "set idle"
                if revived
                else f"{path} left as it is (no longer running, or unwritable)",
            )
        else:
            self.stuck.pop(key, None)
        return done

    async def stuck_in_a_row(self, tid: str) -> int:
        """How many of the task's last attempts ended with a revived stuck session, from TASKS."""
        n = 0
        for _, e in reversed((await task_history(self.nc, tid)).events):
            if isinstance(e, tasks.TaskAttemptFinished):
                if e.outcome != "session_revived":
                    break
                n += 1
        return n

    def _session_path(self, agent: str) -> Path | None:
        template = self.settings.dispatch_session_file
        return session_file.session_path(template, agent) if template else None

    async def _finish(
        self, agent: str, tid: str, attempt: int, since: int, done: Exit, continuation: int
    ) -> str:
        return await settle(
            Settling(
                self.nc, self.commands, self.events, self.clock, self.settings.agent_cooldown_s
            ),
            agent,
            tid,
            attempt,
            since,
            done,
            continuation,
        )

    async def wake(self, agent: str, tid: str | None, session: str, message: str) -> None:
        await self.waker.wake(
            {"agent_id": agent, "task_id": tid, "session_id": session, "message": message}
        )

    async def recover(self) -> list[str]:
        """Settle the attempts a previous dispatcher left in flight (`services.dispatcher.recovery`);
        returns their run ids. Processes still alive are waited for in the background."""
        found = await recovery.open_runs(self.nc)
        for run in found:
            self.running[run.agent_id] = self.running.get(run.agent_id, 0) + 1
            self.processes.add(run.agent_id, run.pid)
            self._spawn(self._recovered(run))
        if found:
            log.warning("dispatch: %d attempt(s) in flight from before the restart: %s",
                        len(found), ", ".join(r.run_id for r in found))
        return [r.run_id for r in found]

    async def _recovered(self, run: recovery.OpenRun) -> None:
        try:
            deadline = self.settings.agent_timeout_s * self.settings.max_monitor_timeouts
            verdict = await recovery.wait_for(run, deadline, self.clock())
            history = await task_history(self.nc, run.task_id)
            if verdict is None and history.task.status not in ("review", "done"):
                verdict = await recovery.session_verdict(self._session_path(run.agent_id), run.agent_id)
            since = next((s for s, e in history.events if isinstance(e, tasks.TaskAttemptStarted)
                          and e.attempt == run.attempt), 0)
            took = int((self.clock() - run.started_at).total_seconds() * 1000)
            done = recovery.exit_after_restart(verdict, history.task.status, took)
            outcome = await self._finish(run.agent_id, run.task_id, run.attempt, since, done, 0)
            await runlog.finish(self.events, run.run_id, outcome, done)
            log.info("dispatch: recovered %s settled as %s", run.run_id, outcome)
        finally:
            self.running[run.agent_id] -= 1

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self.recover()
        kills = await kill.listen(self.nc, self.processes)
        task_status.started()
        try:
            while True:
                try:
                    await self.tick()
                except (QueryError, CommandRefused) as exc:
                    log.warning("dispatch: pass skipped: %s", exc)
                await anyio.sleep(self.settings.dispatch_interval_s)
        finally:
            with anyio.CancelScope(shield=True):
                for t in list(self.watched):
                    t.cancel()
                if self.watched:
                    await asyncio.wait(list(self.watched))
                await self.waker.close()
                with contextlib.suppress(Exception):
                    await kills.unsubscribe()


async def serve(
    settings: Settings, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Connect and dispatch until cancelled (`dispatch_mode` off: only wait)."""
    from services.projector.service import connect

    if settings.dispatch_mode == "off":
        task_status.started()
        await anyio.sleep_forever()
    nc = await connect(settings, "agentledger-dispatcher")
    try:
        await Dispatcher(settings, nc).run(task_status=task_status)
    finally:
        with anyio.CancelScope(shield=True):
            await close_quietly(nc)
