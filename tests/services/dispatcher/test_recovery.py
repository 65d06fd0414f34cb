"""SIGKILL `agentledger serve dispatcher` while an agent process runs: the restarted dispatcher
finds the attempt on RUNS, waits for the process again and settles the attempt once."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from events.agents import AgentHeartbeat, AgentRegistered
from events.runs import RunFinished, RunStarted
from services.dispatcher.recovery import exit_after_restart
from services.projector.service import ProjectorHost
from services.runtime.pids import alive
from tests.hosting import running
from tests.polling import eventually
from tests.services.cli.clirun import clean_env, script
from tests.services.dispatcher.stack import AGENT, Stack
from tests.services.watchdog.streams import events_of

ROOT = Path(__file__).resolve().parents[3]


def test_a_process_gone_during_the_restart_is_judged_by_what_the_task_says() -> None:
    assert exit_after_restart(None, "review", 10).exit_code == 0
    gone = exit_after_restart(None, "working", 10)
    assert gone.exit_code == 1 and "dispatcher was down" in gone.stderr
    assert exit_after_restart("max_monitor_timeouts", "working", 10).verdict == "max_monitor_timeouts"
    assert alive(os.getpid()) and not alive(2**22 + 12345)


@pytest.fixture
async def projector(stack: Stack) -> AsyncIterator[None]:
    async with running(ProjectorHost(stack.settings, stack.nc, ["agents", "tasks"])):
        yield


async def waiting_for(stack: Stack, task_id: str) -> None:
    """An idle registered agent and a task for it: the dispatcher will claim and run it."""
    await stack.client.publish(AGENT, AgentRegistered(agent_class="dev"))
    await stack.client.publish(AGENT, AgentHeartbeat(status="idle"))
    await stack.create(task_id)


def start(stack: Stack, home: Path, **more: str) -> subprocess.Popen[bytes]:
    s = stack.settings
    env = clean_env(
        AGENTLEDGER_NATS_URL=s.url, AGENTLEDGER_HOME=str(home), PYTHONPATH=str(ROOT),
        AGENTLEDGER_DISPATCH_MODE="command", AGENTLEDGER_DISPATCH_COMMAND=s.dispatch_command or "",
        AGENTLEDGER_DISPATCH_INTERVAL_S="0.1", AGENTLEDGER_AGENT_TIMEOUT_S="60", **more,
    )
    with open(home / "dispatcher.log", "ab") as log:
        return subprocess.Popen([script(), "serve", "dispatcher"], env=env, cwd=home,
                                stdout=subprocess.DEVNULL, stderr=log)


async def test_a_dispatcher_killed_mid_attempt_settles_it_after_restart(
    stack: Stack, projector: Any, tmp_path: Path
) -> None:
    await waiting_for(stack, "slow-1")

    async def run_started() -> list[RunStarted]:
        return [e for e in await events_of(stack.nc, "runs") if isinstance(e, RunStarted)]

    proc = start(stack, tmp_path)
    run: RunStarted | None = None
    try:
        (run,) = await eventually(run_started, timeout=30, what="the agent process started")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert run.pid is not None and alive(run.pid)
        proc = start(stack, tmp_path)
        await eventually(lambda: "in flight from before the restart" in (tmp_path / "dispatcher.log").read_text(),
                         timeout=30, what="the restarted dispatcher found the attempt")
        (stack.state / "slow-1.go").touch()  # now the agent finishes its work

        async def settled() -> list[Any]:
            return await stack.finished("slow-1")

        (fin,) = await eventually(settled, timeout=30, what="attempt_finished")
        await eventually(lambda: _finished_runs(stack), timeout=10, what="the run closed")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if run is not None and run.pid and alive(run.pid):  # never leave the fake agent behind
            os.killpg(run.pid, signal.SIGKILL)
    assert run is not None and run.pid is not None
    assert (fin.outcome, fin.attempt, fin.task_status_at_exit) == ("completed", 1, "review")
    assert len(await stack.finished("slow-1")) == 1
    (closed,) = await _finished_runs(stack)
    assert closed.status == "success"
    assert (await stack.history("slow-1")).task.status == "review"
    assert not alive(run.pid)


async def _finished_runs(stack: Stack) -> list[RunFinished]:
    return [e for e in await events_of(stack.nc, "runs") if isinstance(e, RunFinished)]


async def test_the_stuck_count_is_read_from_the_tasks_events_so_a_new_dispatcher_keeps_it(
    stack: Stack,
) -> None:
    from services.dispatcher.loop import Dispatcher

    assert await stack.run("stuck-2") == "session_revived"
    stack.d = Dispatcher(stack.settings, stack.nc)  # a restart: nothing in memory
    assert await stack.d.stuck_in_a_row("stuck-2") == 1
    assert await stack.again("stuck-2") == "session_stuck"


async def test_a_kill_request_from_the_watchdog_kills_the_agents_process(stack: Stack) -> None:
    import asyncio

    import msgspec

    from services.dispatcher import kill

    stack.d.settings = msgspec.structs.replace(stack.settings, agent_timeout_s=60)  # only the kill ends it
    sub = await kill.listen(stack.nc, stack.d.processes)
    running_ = asyncio.create_task(stack.run("hang-1"))
    try:
        started = await eventually(
            lambda: _started(stack), timeout=30, what="the agent process started"
        )
        await stack.nc.publish(f"kill.{AGENT}", b'{"reason": "stuck"}')
        outcome = await asyncio.wait_for(running_, timeout=30)
    finally:
        await sub.unsubscribe()
    assert not alive(started[0].pid)
    assert outcome != "completed"
    (fin,) = await stack.finished("hang-1")
    assert fin.exit_code == -signal.SIGKILL


async def _started(stack: Stack) -> list[RunStarted]:
    return [e for e in await events_of(stack.nc, "runs") if isinstance(e, RunStarted)]


async def test_a_process_that_died_with_the_dispatcher_on_a_stuck_session_is_revived_after_restart(
    stack: Stack, projector: Any, tmp_path: Path
) -> None:
    await waiting_for(stack, "stuck-7")
    session = {"AGENTLEDGER_DISPATCH_SESSION_FILE": stack.settings.dispatch_session_file or ""}
    proc = start(stack, tmp_path, **session)
    run: RunStarted | None = None
    try:
        (run,) = await eventually(lambda: _started(stack), timeout=30, what="the agent process started")
        await eventually(lambda: _session_written(stack), timeout=10, what="the session file")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert run.pid is not None
        os.killpg(run.pid, signal.SIGKILL)  # the agent died too while nobody watched
        await eventually(lambda: not alive(run.pid), timeout=10)  # type: ignore[arg-type]
        proc = start(stack, tmp_path, **session)
        (fin,) = await eventually(lambda: stack.finished("stuck-7"), timeout=30, what="settled")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if run is not None and run.pid and alive(run.pid):
            os.killpg(run.pid, signal.SIGKILL)
    assert fin.outcome == "session_revived"
    assert stack.sessions()["status"] == "idle"
    # given back (the restarted dispatcher may already have claimed it again since)
    released = [e for _, e in (await stack.history("stuck-7")).events if e.name == "released"]
    assert [e.reason for e in released][:1] == ["session_revived"]


def _session_written(stack: Stack) -> bool:
    try:
        return stack.sessions()["status"] == "running"
    except (OSError, KeyError, ValueError):
        return False
