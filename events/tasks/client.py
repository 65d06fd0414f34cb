"""The tasks SDK: commands through `cmd.tasks.<verb>` (the tasks service), queries through the projector.

`TaskClient` is async, one method per verb, returning the service's reply
(`{"ok": true, "seq", "events", "task"|"message"}`) or raising the error the reply names:
`Conflict`, `NotFound`, `ValidationError` (with `field`), `Unavailable`. It keeps the stream
position of its writes (`position`), which `TaskManager` sends with every query (`after`), so a
read right after a write sees it instead of a read model ~50 ms behind.

`TaskManager` is the synchronous drop-in for the task manager agents already call
(`create_task`, `get_actionable_tasks(limit=)`, `mark_start`, `mark_end`, ...): it runs its own
event loop in a background thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Self, TypeVar

import msgspec
import nats
import nats.errors
from nats.aio.client import Client as NATS

from events.core.client import _redact, login
from events.core.errors import Conflict, EventError, Forbidden, Unavailable, ValidationError
from events.core.inbox import inbox_for
from events.core.subjects import query as query_subject
from events.tasks.commands import written_position

T = TypeVar("T")


class NotFound(EventError):
    """The task or message named by a command does not exist."""


def _raise(verb: str, reply: dict[str, Any]) -> None:
    err = reply.get("error") or {}
    code, message = err.get("code"), err.get("message") or f"cmd.tasks.{verb} failed"
    if code == "conflict":
        raise Conflict(message)
    if code == "not_found":
        raise NotFound(message)
    if code == "forbidden":
        raise Forbidden(message)
    if code == "invalid":
        raise ValidationError(message, field=err.get("field"))
    raise Unavailable(message)


class TaskClient:
    """`agent_id` given: commands go to the agent's own subjects (`cmd.tasks.<verb>.<agent_id>`),
    the only ones an agent's NATS credentials may send; the service then acts as that agent."""

    def __init__(self, nc: NATS, timeout: float = 5.0, agent_id: str | None = None) -> None:
        self.nc = nc
        self.timeout = timeout
        self.agent_id = agent_id
        # `{stream: seq}` of the last writes: a query with `after=position` sees them
        self.position: dict[str, int] = {}

    async def command(self, verb: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Send `cmd.tasks.<verb>` with `body`; the reply, or the error it names."""
        subject = f"cmd.tasks.{verb}" + (f".{self.agent_id}" if self.agent_id else "")
        try:
            msg = await self.nc.request(subject, msgspec.json.encode(body), timeout=self.timeout, headers=headers)
        except nats.errors.NoRespondersError:
            raise Unavailable(f"no tasks service answers on {subject}") from None
        except nats.errors.TimeoutError:
            raise Unavailable(f"the tasks service did not answer {subject} in {self.timeout:.1f}s; "
                              "the command may or may not have been applied") from None
        except nats.errors.Error as exc:
            raise Unavailable(f"cannot send {subject}: {exc}") from exc
        reply: dict[str, Any] = msgspec.json.decode(msg.data)
        if not reply.get("ok"):
            _raise(verb, reply)
        self._remember(verb, reply)
        return reply

    def _remember(self, verb: str, reply: dict[str, Any]) -> None:
        for stream, seq in written_position(verb, reply).items():
            self.position[stream] = max(self.position.get(stream, 0), seq)

    def _task(self, verb: str, task_id: str | None, fields: dict[str, Any]) -> Coroutine[Any, Any, dict[str, Any]]:
        body = {k: v for k, v in fields.items() if v is not None}
        if task_id is not None:
            body["task_id"] = task_id
        return self.command(verb, body)

    # one method per verb of events.tasks.VERBS; fields as in events.tasks.commands
    async def create(self, task_id: str | None = None, **fields: Any) -> dict[str, Any]:
        return await self._task("create", task_id, fields)

    async def claim(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("claim", task_id, fields)

    async def start(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("start", task_id, fields)

    async def progress(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("progress", task_id, fields)

    async def submit(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("submit", task_id, fields)

    async def approve(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("approve", task_id, fields)

    async def reject(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("reject", task_id, fields)

    async def fail(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("fail", task_id, fields)

    async def request_fixes(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("request_fixes", task_id, fields)

    async def block(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("block", task_id, fields)

    async def unblock(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("unblock", task_id, fields)

    async def cancel(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("cancel", task_id, fields)

    async def void(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("void", task_id, fields)

    async def release(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("release", task_id, fields)

    async def reopen(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("reopen", task_id, fields)

    async def comment(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("comment", task_id, fields)

    async def add_output(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("add_output", task_id, fields)

    async def count_round(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("count_round", task_id, fields)

    async def start_attempt(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("start_attempt", task_id, fields)

    async def finish_attempt(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self._task("finish_attempt", task_id, fields)

    async def send_mail(self, message_id: str | None = None, *, from_agent: str, **fields: Any) -> dict[str, Any]:
        """`from_agent` travels as the field `from` (a Python keyword)."""
        body = {k: v for k, v in fields.items() if v is not None}
        body["from"] = from_agent
        if message_id is not None:
            body["message_id"] = message_id
        return await self.command("send_mail", body)

    async def read_mail(self, message_id: str, *, agent_id: str) -> dict[str, Any]:
        return await self.command("read_mail", {"message_id": message_id, "agent_id": agent_id})


class TaskManager:
    """Synchronous task manager over NATS, with the method names of the one it replaces.

    Commands go to the tasks service; `get_actionable_tasks` and `get_task_tree` ask the
    projector's `tasks` projection (named queries `actionable` with `agent`, `limit`, and `tree`
    with `id`).
    """

    def __init__(self, url: str = "nats://127.0.0.1:4222", *, agent_id: str = "task-manager",
                 timeout: float = 5.0, projector: str = "projector",
                 credentials: str | Path | None = None) -> None:
        self.agent_id = agent_id
        self.projector = projector
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agentledger-tasks-sdk", daemon=True)
        self._thread.start()
        try:
            auth = login(credentials) if credentials is not None else {}
            self._nc: NATS = self._run(nats.connect(url.split(","), name=f"agentledger-sdk-{agent_id}",
                                                    inbox_prefix=inbox_for(url, auth.get("user")), **auth))
        except Exception as exc:
            self._stop_loop()
            raise Unavailable(f"cannot connect to NATS at {_redact(url)}: {exc}") from exc
        self.tasks = TaskClient(self._nc, timeout, agent_id=agent_id)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if not self._loop.is_closed():
            try:
                self._run(self._nc.close())
            finally:
                self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ------------------------------------------------------------------------------

    def create_task(self, task_name: str | None = None, *, title: str | None = None,
                    display_name: str | None = None, **fields: Any) -> dict[str, Any]:
        """`display_name` is the old name of `title`; returns the new task's state."""
        fields.setdefault("by", self.agent_id)
        reply = self._run(self.tasks.create(task_name, title=title or display_name or task_name, **fields))
        return reply["task"]  # type: ignore[no-any-return]

    def mark_start(self, task_name: str, agent_id: str | None = None) -> dict[str, Any]:
        """Claim (unless this agent holds it already) and start."""
        agent = agent_id or self.agent_id

        async def go() -> dict[str, Any]:
            await self.tasks.claim(task_name, agent_id=agent)
            return (await self.tasks.start(task_name, agent_id=agent))["task"]  # type: ignore[no-any-return]

        return self._run(go())

    def mark_end(self, task_name: str, summary: str = "", agent_id: str | None = None) -> dict[str, Any]:
        """Submit the work for review."""
        agent = agent_id or self.agent_id
        return self._run(self.tasks.submit(task_name, agent_id=agent, summary=summary))["task"]  # type: ignore[no-any-return]

    def mark_error_fix_pending(self, task_name: str, error: str, fix: str = "",
                               agent_id: str | None = None) -> dict[str, Any]:
        """A business failure: fix subtasks are created and the task waits in `fix_pending`."""
        return self._run(self.tasks.fail(
            task_name, error=error, kind="business", agent_id=agent_id,
            fixes=[{"error": error, "fix": fix}],
        ))["task"]  # type: ignore[no-any-return]

    def mark_normal_crash(self, task_name: str, error: str = "crashed", agent_id: str | None = None) -> dict[str, Any]:
        """A system failure: retried with backoff, escalated after five."""
        return self._run(self.tasks.fail(task_name, error=error, kind="system", agent_id=agent_id))["task"]  # type: ignore[no-any-return]

    def mark_void(self, task_name: str, reason: str = "") -> dict[str, Any]:
        return self._run(self.tasks.void(task_name, by=self.agent_id, reason=reason))["task"]  # type: ignore[no-any-return]

    def create_fix_subtasks(self, task_name: str, fixes: list[dict[str, str]]) -> list[str]:
        """`fixes` as `[{"error", "fix", "success_criteria"}]`; returns the new subtask ids."""
        reply = self._run(self.tasks.request_fixes(task_name, fixes=fixes, by=self.agent_id))
        return [e["subject"].split(".")[1] for e in reply["events"] if e["event"] == "created"]

    # -- queries (the projector's `tasks` projection) ------------------------------------------

    def get_actionable_tasks(self, limit: int = 1, agent_id: str | None = None) -> list[dict[str, Any]]:
        return self._query("actionable", agent=agent_id or self.agent_id, limit=limit)

    def get_task_tree(self, task_name: str | None = None) -> list[dict[str, Any]]:
        """The subtree of `task_name`, or every task in tree order when it is None."""
        return self._query("tree", id=task_name)

    def _query(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """A named query of the `tasks` projection, in the projector's query protocol
        (`projections.runtime.protocol`; spoken here, not imported: `events` imports nothing of ours)."""
        request = {"op": "query", "projection": "tasks", "name": name, "params": params,
                   "after": dict(self.tasks.position)}

        async def go() -> list[dict[str, Any]]:
            subject = query_subject(self.projector)
            try:
                msg = await self._nc.request(subject, msgspec.json.encode(request), timeout=self.tasks.timeout)
            except nats.errors.NoRespondersError:
                raise Unavailable(f"no projector answers on {subject}") from None
            except nats.errors.TimeoutError:
                raise Unavailable(f"the projector on {subject} did not answer in {self.tasks.timeout:.1f}s") from None
            reply: dict[str, Any] = msgspec.json.decode(msg.data)
            if not reply.get("ok"):
                err = reply.get("error") or {}
                message = err.get("message") or f"query tasks.{name} failed"
                if err.get("code") == "not_found":
                    raise NotFound(message)
                if err.get("code") == "bad_request":
                    raise ValidationError(message)
                raise Unavailable(message)
            return [dict(zip(reply["columns"], row, strict=True)) for row in reply["rows"]]

        return self._run(go())
