"""The dispatcher: wakes idle agents that have actionable work or unread mail (DESIGN §5).

Every `dispatch_interval_s` it asks the projector for the agents (`agents.list`) and, for each
agent that is idle, not cooling down and below its concurrency limit, for its actionable tasks
(`tasks.actionable`). It claims the first it can (`cmd.tasks.claim`; a lost race tries the next),
records the attempt (`cmd.tasks.start_attempt`) and wakes the agent the configured way:

- `command`: runs `dispatch_command` (placeholders `{agent_id}`, `{task_id}`, `{message}`,
  `{session_id}`; split with shlex first, each argument filled in, never a shell), watches it
  within `agent_timeout_s` up to `max_monitor_timeouts` times, classifies the exit
  (`events.attempts.classify`), records `attempt_finished` and applies the follow-up: continue the
  same session on `gateway_timeout` (at most 3 times), release the task and cool the agent down on
  `api_error`, fail it where the rules say so, kill it when it outlived the limit;
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
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS
from opentelemetry import trace

from events import tasks
from events.agents import AgentCooldownEnded, AgentCooldownStarted, AgentWoken
from events.attempts import MAX_CONTINUATIONS, classify, follow_up, status_at_exit
from events.client import EventClient
from events.subjects import check_id
from projections.protocol import QueryClient, QueryError
from services import dispatch_policy as policy
from services.dispatch_run import CommandRefused, Exit, TaskCommands, task_history, watch
from services.settings import Settings

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
ACTIONABLE_LIMIT = 5


def wake_subject(agent_id: str) -> str:
    """Core NATS, outside every stream's subjects: a wake is a signal, the `woken` event the record."""
    return f"wake.{check_id(agent_id, 'agent_id')}"


class Dispatcher:
    def __init__(self, settings: Settings, nc: NATS, *, clock: Callable[[], datetime] | None = None) -> None:
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
        self.http: aiohttp.ClientSession | None = None

    # -- the loop --------------------------------------------------------------------------

    async def tick(self) -> list[str]:
        """One pass over the agents; returns the ids of the tasks claimed (mail wakes: `mail:<agent>`)."""
        now = self.clock()
        agents = (await self.queries.query("agents", "list")).records()
        for a in agents:
            if policy.cooldown_expired(a, now):
                until = a["cooldown_until"]
                await self.events.publish(a["id"], AgentCooldownEnded(reason="expired"),
                                          msg_id=f"dispatch:cooldown_ended:{a['id']}:{until}")
        woke = []
        for agent in policy.wakeable(agents, self.running, now):
            rows = (await self.queries.query("tasks", "actionable", agent=agent, limit=ACTIONABLE_LIMIT)).records()
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
            unread = policy.unread_mail((await self.queries.query("tasks", "inbox", agent=agent)).records())
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
        await self.events.publish(agent, AgentWoken(via=self.mode, session_id=session, reason="mail"))  # type: ignore[arg-type]
        return True

    async def _mail_run(self, agent: str, session: str, message: str) -> None:
        try:
            await self._watch(agent, "", session, message)
        finally:
            self.running[agent] -= 1

    # -- one task: claim done, attempts until a follow-up other than `continue` -------------

    async def dispatch(self, agent: str, task: dict[str, Any]) -> str | None:
        """Run attempts of `task` (already claimed by `agent`); returns the last outcome
        (None outside the command mode, where the runtime reports for itself)."""
        tid = task["id"]
        session, continuation = str(uuid.uuid4()), 0
        try:
            while True:
                with _tracer.start_as_current_span("dispatch", attributes={
                    "agentledger.agent_id": agent, "agentledger.task_id": tid,
                    "agentledger.session_id": session, "agentledger.continuation": continuation,
                }) as span:
                    started = await self.commands.send(
                        "start_attempt", tid, agent_id=agent, session_id=session, continuation=continuation)
                    attempt = int(started["task"]["attempts"])
                    message = policy.task_prompt(task, agent, self.settings.http_url,
                                                 continuation=continuation, max_continuations=MAX_CONTINUATIONS)
                    await self.events.publish(agent, AgentWoken(
                        via=self.mode, task_id=tid, session_id=session, continuation=continuation, reason="task",  # type: ignore[arg-type]
                    ), msg_id=policy.decision_id("woken", tid, attempt))
                    if self.mode != "command":
                        await self.wake(agent, tid, session, message)
                        return None
                    done = await self._watch(agent, tid, session, message)
                    outcome = await self._finish(agent, tid, attempt, started["seq"], done, continuation)
                    span.set_attribute("agentledger.outcome", outcome)
                if outcome != "continue":
                    return outcome
                continuation += 1
        except CommandRefused as exc:
            log.error("dispatch: %s on %s stopped: %s", agent, tid, exc)
            return None
        finally:
            self.running[agent] -= 1

    async def _watch(self, agent: str, tid: str, session: str, message: str) -> Exit:
        argv = policy.command_line(self.settings.dispatch_command or "", agent_id=agent, task_id=tid,
                                   session_id=session, message=message)
        return await watch(argv, timeout_s=self.settings.agent_timeout_s,
                           max_monitor_timeouts=self.settings.max_monitor_timeouts)

    async def _finish(self, agent: str, tid: str, attempt: int, since: int, done: Exit, continuation: int) -> str:
        """Classify, record `attempt_finished`, apply the follow-up; `continue` when the same
        session goes on, else the outcome."""
        history = await task_history(self.nc, tid, since=since)
        state = history.task
        failed = any(isinstance(e, tasks.TaskFailed) for _, e in history.events)
        at_exit = status_at_exit(state.status, failed)
        meta = policy.parse_meta(done.stdout)
        if done.verdict is not None:
            outcome = done.verdict
        else:
            outcome = classify(done.exit_code or 0, done.stderr, meta.raw, at_exit)
        fu = follow_up(outcome, continuation)  # type: ignore[arg-type]
        log.info("dispatch: %s on %s attempt %d: %s (exit %s) -> %s", agent, tid, attempt, outcome,
                 done.exit_code, fu.action)
        recorded = any(isinstance(e, tasks.TaskAttemptFinished) and e.attempt == attempt for _, e in history.events)
        if not recorded:
            error = done.stderr[-policy.ERROR_CHARS:] or None if outcome != "completed" else None
            await self.commands.send(
                "finish_attempt", tid, msg_id=policy.decision_id("finished", tid, attempt),
                agent_id=agent, outcome=outcome, exit_code=done.exit_code, transport=meta.transport,
                fallback_reason=meta.fallback_reason, duration_ms=meta.duration_ms or done.duration_ms,
                task_status_at_exit=at_exit, error=error,
            )
        holds = state.status in ("claimed", "working") and state.claimed_by == agent
        if fu.cooldown:
            until = self.clock() + timedelta(seconds=self.settings.agent_cooldown_s)
            await self.events.publish(agent, AgentCooldownStarted(until=until, reason=outcome, task_id=tid),
                                      msg_id=policy.decision_id("cooldown", tid, attempt))
        if fu.action == "release" and holds:
            await self.commands.send("release", tid, msg_id=policy.decision_id("release", tid, attempt),
                                     reason=fu.reason, agent_id=agent)
        elif fu.action == "fail" and holds:
            await self.commands.send("fail", tid, msg_id=policy.decision_id("fail", tid, attempt),
                                     error=fu.reason, kind="system", agent_id=agent)
        elif fu.action == "continue":
            if holds:
                return "continue"
            log.info("dispatch: %s no longer holds %s (%s): no continuation", agent, tid, state.status)
        return outcome

    # -- waking runtimes that are not our child processes ----------------------------------

    async def wake(self, agent: str, tid: str | None, session: str, message: str) -> None:
        body = {"agent_id": agent, "task_id": tid, "session_id": session, "message": message}
        if self.mode == "nats":
            await self.nc.publish(wake_subject(agent), msgspec.json.encode(body))
        elif self.mode == "webhook":
            if self.http is None:
                self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout_s))
            async with self.http.post(self.settings.dispatch_webhook_url or "", json=body) as resp:
                if resp.status >= 300:
                    raise CommandRefused("unavailable", f"wake webhook answered {resp.status} for {agent}")

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
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
                if self.http is not None:
                    await self.http.close()


async def serve(settings: Settings, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Connect and dispatch until cancelled (`dispatch_mode` off: only wait)."""
    from services.projector import connect

    if settings.dispatch_mode == "off":
        task_status.started()
        await anyio.sleep_forever()
    nc = await connect(settings, "agentledger-dispatcher")
    try:
        await Dispatcher(settings, nc).run(task_status=task_status)
    finally:
        with anyio.CancelScope(shield=True):
            await nc.close()
