"""The dispatcher's I/O parts: the tasks command path, a task's own fold, and one watched process.

- `TaskCommands` sends commands through the SDK's `TaskClient` (`cmd.tasks.<verb>`) with a
  `Nats-Msg-Id` header on policy decisions, and turns a refusal into one error with its code.
- `task_history` folds one task's events straight from the TASKS stream (direct gets by subject),
  so the status at exit is the stream's truth, not a read model that may lag behind.
- `watch` runs a wake command and waits for it within the agent timeout, up to the monitor
  timeout limit, keeping the tail of its output; on each timeout it asks the agent's session
  state (when it can) whether the session is stuck or compacting (`classify_timeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NamedTuple

import nats.js.errors
from nats.aio.client import Client as NATS

from events import tasks
from events.core import codec
from events.core.client import H_MSG_ID
from events.core.errors import Conflict, EventError, ValidationError
from events.core.streams import stream_name
from events.core.subjects import aggregate_filter
from events.tasks.attempts import classify_timeout
from events.tasks.client import NotFound, TaskClient
from services.dispatcher.policy import STREAM_TAIL
from services.dispatcher.session import SessionState

log = logging.getLogger(__name__)


class CommandRefused(Exception):
    """The command service said no; `code` is its error code (conflict, not_found, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class TaskCommands:
    """`TaskClient` with a `Nats-Msg-Id` on policy decisions and one error carrying the code."""

    def __init__(self, nc: NATS, timeout: float = 10.0) -> None:
        self.client = TaskClient(nc, timeout=timeout)

    async def send(
        self, verb: str, task_id: str, *, msg_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {"task_id": task_id, **{k: v for k, v in fields.items() if v is not None}}
        try:
            return await self.client.command(verb, body, {H_MSG_ID: msg_id} if msg_id else None)
        except EventError as exc:
            raise CommandRefused(_CODES.get(type(exc), "unavailable"), str(exc)) from None


_CODES: dict[type, str] = {Conflict: "conflict", NotFound: "not_found", ValidationError: "invalid"}


class History(NamedTuple):
    task: tasks.Task
    # (seq, event) after `since`
    events: list[tuple[int, tasks.TaskEvent]]


async def task_history(nc: NATS, task_id: str, since: int = 0, timeout: float = 5.0) -> History:
    """Fold every event of `task_id`; also return the events after stream seq `since`."""
    js = nc.jetstream(timeout=timeout)
    stream, subject = stream_name("tasks"), aggregate_filter("tasks", task_id)
    state, later, seq = tasks.initial_state(task_id), [], 1
    while True:
        try:
            raw = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return History(state, later)
        event = codec.decode(raw.subject, raw.data)  # type: ignore[arg-type]
        state, _ = tasks.evolve(state, event, raw.time or datetime.now().astimezone(), raw.seq)  # type: ignore[arg-type]
        if raw.seq > since:  # type: ignore[operator]
            later.append((raw.seq, event))
        seq = raw.seq + 1  # type: ignore[operator]


class Exit(NamedTuple):
    """How a watched process ended: `exit_code` None when it was killed after `verdict`."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: int
    verdict: str | None  # a TimeoutVerdict other than "wait" when the process outlived the limit
    monitor_timeouts: int  # counted ones (B3/B4): waits for a compaction are not
    compact_waits: int = 0  # including those passed in


async def _drain(stream: asyncio.StreamReader | None, keep: deque[bytes], size: list[int]) -> None:
    """Read to EOF, keeping only the last STREAM_TAIL bytes."""
    if stream is None:
        return
    while chunk := await stream.read(4096):
        keep.append(chunk)
        size[0] += len(chunk)
        while size[0] - len(keep[0]) >= STREAM_TAIL:
            size[0] -= len(keep.popleft())


async def _follow(out: deque[bytes], on_output: Callable[[str], Awaitable[None]], every_s: float) -> None:
    """Every `every_s`, the newest output line when it changed: the run's progress line."""
    sent = ""
    while True:
        await asyncio.sleep(every_s)
        lines = [ln for ln in _text(out).splitlines() if ln.strip()]
        if lines and lines[-1] != sent:
            sent = lines[-1]
            try:
                await on_output(sent)
            except EventError as exc:  # a lost progress line never stops the watch
                log.warning("dispatch: progress line not recorded: %s", exc)


def _text(keep: deque[bytes]) -> str:
    return b"".join(keep)[-STREAM_TAIL:].decode("utf-8", "replace")


async def watch(
    argv: list[str],
    *,
    timeout_s: float,
    max_monitor_timeouts: int,
    session: Callable[[], SessionState] | None = None,
    stuck_count: int = 0,
    compact_waits: int = 0,
    on_spawn: Callable[[int], Awaitable[None]] | None = None,
    on_output: Callable[[str], Awaitable[None]] | None = None,
    follow_s: float = 30.0,
) -> Exit:
    """Run `argv` (never through a shell) until it exits or the timeout rules give up on it; then
    it is killed and `verdict` says why.

    `session` reads the agent's session state on each timeout; `stuck_count` and
    `compact_waits` are what the task already went through (they outlive one run).
    """
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    if on_spawn is not None:
        try:
            await on_spawn(proc.pid)
        except BaseException:
            _kill(proc)
            raise
    out: deque[bytes] = deque()
    err: deque[bytes] = deque()
    readers = asyncio.gather(_drain(proc.stdout, out, [0]), _drain(proc.stderr, err, [0]))
    follower = asyncio.ensure_future(_follow(out, on_output, follow_s)) if on_output else None
    waiting = asyncio.ensure_future(asyncio.gather(readers, proc.wait()))
    timeouts, verdict = 0, None
    try:
        while True:
            done, _ = await asyncio.wait([waiting], timeout=timeout_s)
            if done:
                break
            state = await asyncio.to_thread(session) if session else None
            stuck = state is not None and state.stuck
            compacting = state is not None and state.compacting and not stuck
            if compacting:
                compact_waits += 1
            elif not stuck:
                timeouts += 1
            verdict = classify_timeout(
                timeouts,
                session_stuck=stuck,
                stuck_count=stuck_count + 1,
                compacting=compacting,
                compact_waits=compact_waits,
                max_monitor_timeouts=max_monitor_timeouts,
            )
            log.warning(
                "dispatch: pid %d outlived the agent timeout (%d/%d, compaction waits %d, %s): %s",
                proc.pid,
                timeouts,
                max_monitor_timeouts,
                compact_waits,
                state,
                verdict,
            )
            if verdict != "wait":
                _kill(proc)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(waiting), 10.0)
                break
            verdict = None
    finally:
        if follower is not None:
            follower.cancel()
        if proc.returncode is None:  # cancelled: never leave an agent process behind
            _kill(proc)
            waiting.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.shield(proc.wait())
    duration = int((time.monotonic() - started) * 1000)
    code = None if verdict is not None else proc.returncode
    return Exit(code, _text(out), _text(err), duration, verdict, timeouts, compact_waits)


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: children go too
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
