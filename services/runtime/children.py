"""One process per service, each started as production starts it: `agentledger serve <name>`.

A service in its own process has its own core, its own garbage collector and its own crash: a
projector that dies does not take the gateway with it. The supervisor restarts a child that dies
after it was ready, with the backoff of the nats-server supervision (0.5 s doubling to 30 s, from
the beginning again after 30 s up), and says so; a child that dies before it was ever ready is a
configuration error (a taken port, a missing setting), which no restart cures, so `up` stops with
the child's own last line. A child is ready when it prints the line `agentledger serve` prints
once its service runs. Its output is merged into the supervisor's stderr, each line prefixed with
the service's name. What the supervisor knows is kept in `<home>/status.json` for
`agentledger status`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import msgspec

from services.runtime.files import write_atomic
from services.runtime.homelock import SUPERVISOR_ENV
from services.runtime.supervise import BACKOFF_MAX_S, BACKOFF_MIN_S, STABLE_S
from services.settings import Settings

log = logging.getLogger(__name__)
STATUS_FILE = "status.json"  # in the home: what `agentledger status` reads
READY_MARK = "Ctrl-C stops it"  # the last words of `agentledger serve`'s started line
STOP_GRACE_S = 30.0


class ChildFailed(Exception):
    """A service process exited before it was ever ready; the message carries its last line."""


@dataclass
class Child:
    """One supervised service process and what `agentledger status` shows of it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    pid: int | None = None
    started_at: float | None = None
    restarts: int = 0
    state: str = "starting"  # starting | ready | restarting | stopping | stopped
    last_exit: str | None = None
    last_line: str = ""
    ready: anyio.Event = field(default_factory=anyio.Event)
    stopping: bool = False
    proc: anyio.abc.Process | None = None

    def view(self) -> dict[str, object]:
        return {"name": self.name, "pid": self.pid, "started_at": self.started_at,
                "restarts": self.restarts, "state": self.state, "last_exit": self.last_exit}


def serve_argv(name: str) -> list[str]:
    """`agentledger serve <name>` with the interpreter running us (the console script's own)."""
    return [sys.executable, "-m", "services.cli", "serve", name]


def child_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment that gives a child exactly the supervisor's settings: every setting as its
    `AGENTLEDGER_*` variable, and no settings file (the variables already hold what it said)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("AGENTLEDGER_")}
    for name, value in msgspec.structs.asdict(settings).items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ",".join(value)
        else:
            text = str(value)
        env[f"AGENTLEDGER_{name.upper()}"] = text
    env["AGENTLEDGER_CONFIG"] = os.devnull
    env[SUPERVISOR_ENV] = str(os.getpid())
    return env


def describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


async def keep_running(child: Child, changed: Callable[[], None]) -> None:
    """Run `child` until it is stopped; restart it with backoff whenever it dies after being ready."""
    delay = BACKOFF_MIN_S
    while not child.stopping:
        code = await _run_once(child, changed)
        if child.stopping:
            return
        child.last_exit = describe_exit(code)
        if not child.ready.is_set():
            said = child.last_line.removeprefix("agentledger: ")
            if said != child.last_line:  # the child's own one-line error
                raise ChildFailed(f"{child.name}: {said}")
            raise ChildFailed(f"{child.name} {child.last_exit} before it was ready: {said}")
        if child.started_at is not None and time.time() - child.started_at >= STABLE_S:
            delay = BACKOFF_MIN_S
        log.error("%s (pid %s) %s; restarting it in %.1fs", child.name, child.pid, child.last_exit, delay)
        child.state = "restarting"
        changed()
        await anyio.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX_S)
        child.restarts += 1


async def _run_once(child: Child, changed: Callable[[], None]) -> int:
    proc = await anyio.open_process(
        child.argv, env=child.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
    )
    child.proc, child.pid, child.started_at = proc, proc.pid, time.time()
    child.state = "starting"
    changed()
    if child.restarts:
        log.warning("%s restarted (pid %s, restart %d)", child.name, proc.pid, child.restarts)
    # shielded: only `stop` ends a child, in the supervisor's order; its last lines still merge
    with anyio.CancelScope(shield=True):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump, child, proc.stdout, changed)
            tg.start_soon(_pump, child, proc.stderr, changed)
            code = await proc.wait()
            tg.cancel_scope.deadline = anyio.current_time() + 1.0  # a grandchild holding the pipe
    return code


async def _pump(child: Child, stream: anyio.abc.ByteReceiveStream | None, changed: Callable[[], None]) -> None:
    if stream is None:
        return
    pending = b""
    async for chunk in stream:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            text = raw.decode(errors="replace").rstrip()
            if not text:
                continue
            child.last_line = text
            sys.stderr.write(f"{child.name:<10} | {text}\n")
            if READY_MARK in text and child.state == "starting":
                child.state = "ready"
                child.ready.set()
                changed()
    sys.stderr.flush()


def write_status(path: Path, children: list[Child], **supervisor: object) -> None:
    """`<home>/status.json`: the supervisor (pid, start, URLs) and every child's `view`."""
    body = {"supervisor": {"pid": os.getpid(), **supervisor}, "services": [c.view() for c in children]}
    write_atomic(path, msgspec.json.encode(body).decode())


async def run_all(
    kids: list[Child], changed: Callable[[], None], *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Start `kids` in order, each ready before the next (a later one may depend on an earlier);
    started once all are; on cancellation stop them in reverse order, one at a time."""
    async with anyio.create_task_group() as tg:
        try:
            for kid in kids:
                tg.start_soon(keep_running, kid, changed)
                await kid.ready.wait()
                log.info("%s ready (pid %s)", kid.name, kid.pid)
            task_status.started()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                for kid in reversed(kids):
                    await stop(kid)
                    changed()
            tg.cancel_scope.cancel()


async def stop(child: Child) -> None:
    """SIGTERM, then SIGKILL after the grace period; the restart loop sees `stopping` and ends."""
    child.stopping = True
    proc = child.proc
    if proc is None or proc.returncode is not None:
        child.state = "stopped"
        return
    child.state = "stopping"
    proc.terminate()
    with anyio.move_on_after(STOP_GRACE_S) as late:
        await proc.wait()
    if late.cancelled_caught:
        log.error("%s (pid %s) did not stop within %.0fs; killing it", child.name, proc.pid, STOP_GRACE_S)
        proc.kill()
        await proc.wait()
    child.state = "stopped"
    log.info("%s stopped", child.name)
