"""The dispatcher: pure decisions without a server, then the fake agent program driven against a
real nats-server, the real tasks command service and, for the full loop, the real projector.

The fake agent (`tests/fixtures/fake_agent.py`) exits in the way its task id names
(`<scenario>-<n>`); each test checks what the TASKS and AGENTS streams hold afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from nats.aio.client import Client as NATS

from events import codec, tasks
from events.agents import AgentCooldownStarted, AgentHeartbeat, AgentWoken
from events.client import EventClient
from events.streams import stream_name
from services import dispatch_policy as policy
from services import dispatch_session
from services.dispatch_run import Exit, History, task_history, watch
from services.dispatch_session import SessionState
from services.dispatch_wake import wake_subject
from services.dispatcher import Dispatcher
from services.settings import Settings
from tests.hosting import in_task
from tests.polling import eventually

FAKE = Path(__file__).parent.parent / "fixtures" / "fake_agent.py"
NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
AGENT = "coder"


# --- pure: who may be woken, with what words, by which argv ----------------------------------


def agent(
    id: str, status: str = "idle", limit: int = 1, cooldown: datetime | None = None
) -> dict[str, Any]:
    return {"id": id, "status": status, "concurrency_limit": limit, "cooldown_until": cooldown}


def test_only_idle_agents_out_of_cooldown_and_below_their_limit_are_woken() -> None:
    agents = [
        agent("b"),
        agent("a"),
        agent("busy", "busy"),
        agent("off", "offline"),
        agent("cold", cooldown=NOW + timedelta(seconds=1)),
        agent("warm", cooldown=NOW),
        agent("full", limit=2),
        agent("room", limit=2),
    ]
    assert policy.wakeable(agents, {"full": 2, "room": 1}, NOW) == ["a", "b", "room", "warm"]


def test_an_expired_cooldown_is_noticed() -> None:
    assert policy.cooldown_expired(agent("x", cooldown=NOW), NOW)
    assert not policy.cooldown_expired(agent("x", cooldown=NOW + timedelta(seconds=1)), NOW)
    assert not policy.cooldown_expired(agent("x"), NOW)


def test_the_command_template_is_split_before_it_is_filled_so_no_shell_reads_the_message() -> None:
    argv = policy.command_line(
        "openclaw agent --agent {agent_id} --session-id {session_id} --message {message} --json",
        agent_id="coder",
        session_id="s1",
        task_id="T1",
        message="do it; rm -rf / && echo 'x'",
    )
    assert argv == [
        "openclaw",
        "agent",
        "--agent",
        "coder",
        "--session-id",
        "s1",
        "--message",
        "do it; rm -rf / && echo 'x'",
        "--json",
    ]


def test_a_template_with_an_unknown_placeholder_is_refused_naming_it() -> None:
    with pytest.raises(policy.TemplateError, match="task"):
        policy.check_template("run {task}")
    with pytest.raises(policy.TemplateError, match="cannot split"):
        policy.check_template("run 'unclosed")


def test_the_meta_is_the_last_json_line_of_stdout() -> None:
    out = 'log line\n{"x": 1}\n{"result": "ok", "meta": {"transport": "gateway", "durationMs": 1200}}\n'
    assert policy.parse_meta(out)[:3] == ("gateway", None, 1200)
    flat = policy.parse_meta('{"transport": "embedded", "fallbackReason": "timeout"}')
    assert flat[:2] == ("embedded", "timeout")
    assert policy.parse_meta("no json here").raw is None


def test_the_wake_prompt_carries_the_task_and_the_three_ways_to_report_back() -> None:
    task = {
        "id": "T1",
        "title": "Build it",
        "description": "the thing",
        "must_haves": "tests",
        "success_criteria": "green",
    }
    text = policy.task_prompt(task, "coder", "http://127.0.0.1:8080")
    for part in (
        "T1",
        "Build it",
        "the thing",
        "tests",
        "green",
        "agentledger tasks submit T1 --agent coder",
        "TaskClient(nc)",
        "curl -X POST http://127.0.0.1:8080/api/tasks/T1/submit",
    ):
        assert part in text
    assert "continuation 2 of 3" in policy.task_prompt(task, "coder", "http://h", continuation=2)


def test_unread_mail_counts_messages_not_read() -> None:
    assert policy.unread_mail([{"read": False}, {"read": True}, {"read_at": None}]) == 2


def test_policy_decisions_have_stable_ids() -> None:
    assert policy.decision_id("release", "T1", 2) == "dispatch:release:T1:2"


async def test_a_process_that_outlives_the_monitor_limit_is_killed() -> None:
    done = await watch(
        [sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=0.2, max_monitor_timeouts=2
    )
    assert (done.exit_code, done.verdict, done.monitor_timeouts) == (
        None,
        "max_monitor_timeouts",
        2,
    )


async def test_waits_for_a_compaction_are_not_counted_as_monitor_timeouts() -> None:
    states = iter([SessionState("running", 1, True, compacting=True)])
    done = await watch(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        timeout_s=0.2,
        max_monitor_timeouts=2,
        session=lambda: next(states, dispatch_session.UNKNOWN),
    )
    assert (done.verdict, done.monitor_timeouts, done.compact_waits) == (
        "max_monitor_timeouts",
        2,
        1,
    )


async def test_output_is_kept_bounded() -> None:
    code = f"import sys; sys.stdout.write('x' * {policy.STREAM_TAIL * 3}); print(); print('{{\"transport\": \"t\"}}')"
    done = await watch([sys.executable, "-c", code], timeout_s=30, max_monitor_timeouts=1)
    assert done.exit_code == 0 and len(done.stdout) <= policy.STREAM_TAIL
    assert policy.parse_meta(done.stdout).transport == "t"


# --- the agent runtime's session file ---------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def sessions_json(
    tmp_path: Path,
    *,
    status: str = "running",
    pid: int | None = None,
    checkpoints: list[Any] | None = None,
    session_file: str | None = None,
) -> Path:
    if session_file is None:
        session_file = str(tmp_path / "s1.jsonl")
    if pid is not None:
        lock = Path(session_file) if Path(session_file).is_absolute() else tmp_path / session_file
        Path(f"{lock}.lock").write_text(json.dumps({"pid": pid}))
    main = {
        "status": status,
        "sessionFile": session_file,
        "compactionCheckpoints": checkpoints or [],
    }
    path = tmp_path / "sessions.json"
    path.write_text(json.dumps({f"agent:{AGENT}:main": main, "agent:other:main": {"x": 1}}))
    return path


def test_an_unreadable_session_file_is_an_unknown_state_never_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert dispatch_session.read_state(missing, AGENT) == dispatch_session.UNKNOWN
    corrupt = tmp_path / "corrupt.json"
    for text in ("{not json", "[1, 2]", '{"agent:coder:main": "running"}', "{}"):
        corrupt.write_text(text)
        state = dispatch_session.read_state(corrupt, AGENT)
        assert state == dispatch_session.UNKNOWN and not state.stuck and not state.compacting
    assert not dispatch_session.revive(missing, AGENT) and not dispatch_session.revive(
        corrupt, AGENT
    )


def test_a_running_session_is_stuck_only_when_its_lock_names_a_dead_process(tmp_path: Path) -> None:
    dead = dispatch_session.read_state(sessions_json(tmp_path, pid=dead_pid()), AGENT)
    assert (dead.status, dead.lock_alive, dead.stuck) == ("running", False, True)
    alive = dispatch_session.read_state(sessions_json(tmp_path, pid=os.getpid()), AGENT)
    assert (alive.lock_pid, alive.lock_alive, alive.stuck) == (os.getpid(), True, False)
    idle = dispatch_session.read_state(
        sessions_json(tmp_path, status="idle", pid=dead_pid()), AGENT
    )
    assert not idle.stuck
    no_lock = dispatch_session.read_state(sessions_json(tmp_path, session_file="none.jsonl"), AGENT)
    assert (no_lock.lock_pid, no_lock.stuck) == (None, False)
    relative = sessions_json(tmp_path, pid=dead_pid(), session_file="rel.jsonl")
    assert dispatch_session.read_state(relative, AGENT).stuck  # beside sessions.json
    assert dispatch_session.pid_alive(0) is None  # never a process group


def test_only_a_compaction_checkpoint_of_the_last_five_minutes_means_compacting(
    tmp_path: Path,
) -> None:
    now = time.time()
    old = [{"createdAt": (now - 301) * 1000}, {"createdAt": "yesterday"}, "junk"]
    path = sessions_json(tmp_path, pid=os.getpid(), checkpoints=old)
    assert not dispatch_session.read_state(path, AGENT, now=now).compacting
    path = sessions_json(
        tmp_path, pid=os.getpid(), checkpoints=[*old, {"createdAt": (now - 60) * 1000}]
    )
    assert dispatch_session.read_state(path, AGENT, now=now).compacting


def test_a_revive_sets_the_main_session_idle_in_place_and_leaves_the_rest(tmp_path: Path) -> None:
    path = sessions_json(tmp_path, pid=dead_pid())
    path.chmod(0o640)
    assert dispatch_session.revive(path, AGENT)
    data = json.loads(path.read_text())
    assert data[f"agent:{AGENT}:main"]["status"] == "idle"
    assert data["agent:other:main"] == {"x": 1}
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1.jsonl.lock", "sessions.json"]
    assert not dispatch_session.revive(path, AGENT)  # already idle: nothing to revive


def test_the_session_file_template_is_expanded_per_agent() -> None:
    path = dispatch_session.session_path(
        "~/.openclaw/agents/{agent_id}/sessions/sessions.json", AGENT
    )
    assert path == Path.home() / ".openclaw" / "agents" / AGENT / "sessions" / "sessions.json"
    assert dispatch_session.session_path("/s/{agent_id}.json", "../etc") is None


# --- real servers ------------------------------------------------------------------------------


def settings_for(tmp_path: Path, nats_url: str, **more: Any) -> Settings:
    state = tmp_path / "agent-state"
    state.mkdir(exist_ok=True)
    template = (
        f"{sys.executable} {FAKE} --nats {nats_url} --state {state} --agent {{agent_id}} "
        "--task {task_id} --session {session_id} --message {message}"
    )
    values: dict[str, Any] = {
        "home": str(tmp_path),
        "nats_url": nats_url,
        "dispatch_mode": "command",
        "dispatch_command": template,
        "agent_timeout_s": 1.0,
        "max_monitor_timeouts": 2,
        "batch_ms": 20,
        "dispatch_interval_s": 0.1,
        "dispatch_session_file": str(
            state / "agents" / "{agent_id}" / "sessions" / "sessions.json"
        ),
        **more,
    }
    return Settings(**values)


@pytest.fixture
async def stack(tmp_path: Path, nats_url: str, client: EventClient) -> AsyncIterator[Stack]:
    from services import tasks as tasks_service

    settings = settings_for(tmp_path, nats_url)
    async with in_task(lambda task_status: tasks_service.serve(settings, task_status=task_status)):
        nc = await nats.connect(nats_url)
        try:
            yield Stack(settings, nc, Dispatcher(settings, nc), client, tmp_path / "agent-state")
        finally:
            await nc.close()


class Stack:
    def __init__(
        self, settings: Settings, nc: NATS, d: Dispatcher, client: EventClient, state: Path
    ) -> None:
        self.settings, self.nc, self.d, self.client, self.state = settings, nc, d, client, state

    async def create(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self.d.commands.send("create", task_id, title=f"work on {task_id}", **fields)

    async def run(self, task_id: str) -> str | None:
        """Create the task, claim it for AGENT and dispatch it to the end of its attempts."""
        created = await self.create(task_id, description="described", must_haves="a file")
        assert await self.d.claim(AGENT, task_id)
        return await self.d.dispatch(AGENT, created["task"])

    async def again(self, task_id: str) -> str | None:
        """Claim a task given back earlier and dispatch it once more."""
        assert await self.d.claim(AGENT, task_id)
        return await self.d.dispatch(AGENT, {"id": task_id, "title": f"work on {task_id}"})

    def sessions(self, agent_id: str = AGENT) -> dict[str, Any]:
        path = self.state / "agents" / agent_id / "sessions" / "sessions.json"
        return json.loads(path.read_text())[f"agent:{agent_id}:main"]

    async def history(self, task_id: str) -> History:
        return await task_history(self.nc, task_id)

    async def finished(self, task_id: str) -> list[tasks.TaskAttemptFinished]:
        return [
            e
            for _, e in (await self.history(task_id)).events
            if isinstance(e, tasks.TaskAttemptFinished)
        ]

    async def started(self, task_id: str) -> list[tasks.TaskAttemptStarted]:
        return [
            e
            for _, e in (await self.history(task_id)).events
            if isinstance(e, tasks.TaskAttemptStarted)
        ]

    async def agent_events(self, agent_id: str = AGENT) -> list[Any]:
        js, out, seq = self.nc.jetstream(), [], 1
        while True:
            try:
                raw = await js.get_msg(
                    stream_name("agents"), seq=seq, subject=f"agents.{agent_id}.*", next=True
                )
            except nats.js.errors.NotFoundError:
                return out
            out.append(codec.decode(raw.subject, raw.data))
            seq = raw.seq + 1

    def messages(self, session_id: str) -> list[str]:
        return [
            json.loads(line)
            for line in (self.state / f"{session_id}.messages").read_text().splitlines()
        ]


async def test_completed_is_recorded_and_the_task_waits_for_review(stack: Stack) -> None:
    assert await stack.run("completed-1") == "completed"
    (fin,) = await stack.finished("completed-1")
    assert (fin.outcome, fin.exit_code, fin.transport, fin.task_status_at_exit) == (
        "completed",
        0,
        "gateway",
        "review",
    )
    assert fin.duration_ms == 42
    assert (await stack.history("completed-1")).task.status == "review"
    woken = [e for e in await stack.agent_events() if isinstance(e, AgentWoken)]
    assert [(w.via, w.task_id) for w in woken] == [("command", "completed-1")]
    (message,) = stack.messages(woken[0].session_id)
    assert "work on completed-1" in message and "/api/tasks/completed-1/submit" in message


async def test_a_gateway_timeout_continues_the_same_session_which_then_completes(
    stack: Stack,
) -> None:
    assert await stack.run("continued-1") == "completed"
    assert [f.outcome for f in await stack.finished("continued-1")] == [
        "gateway_timeout",
        "completed",
    ]
    started = await stack.started("continued-1")
    assert [s.continuation for s in started] == [0, 1]
    assert started[0].session_id == started[1].session_id
    first, second = stack.messages(started[0].session_id)
    assert "continuation 1 of 3" in second and "continuation" not in first.split("\n")[0]
    assert (await stack.history("continued-1")).task.status == "review"


async def test_a_session_that_keeps_timing_out_fails_after_three_continuations(
    stack: Stack,
) -> None:
    assert await stack.run("gateway_timeout-1") == "gateway_timeout"
    assert [f.outcome for f in await stack.finished("gateway_timeout-1")] == ["gateway_timeout"] * 4
    events = (await stack.history("gateway_timeout-1")).events
    (failed,) = [e for _, e in events if isinstance(e, tasks.TaskFailed)]
    assert failed.error == "max_continuations" and failed.kind == "system"
    assert any(isinstance(e, tasks.TaskRetryScheduled) for _, e in events)


async def test_a_429_puts_the_task_back_to_pending_and_cools_the_agent_down(stack: Stack) -> None:
    assert await stack.run("api_error-1") == "api_error"
    (fin,) = await stack.finished("api_error-1")
    assert fin.outcome == "api_error" and fin.exit_code == 1 and "429" in (fin.error or "")
    history = await stack.history("api_error-1")
    assert history.task.status == "pending" and history.task.status_reason == "api_error"
    (cool,) = [e for e in await stack.agent_events() if isinstance(e, AgentCooldownStarted)]
    assert cool.reason == "api_error" and cool.task_id == "api_error-1"
    assert cool.until > datetime.now(UTC) + timedelta(seconds=stack.settings.agent_cooldown_s - 60)


@pytest.mark.parametrize("scenario", ["gateway_unreachable", "compact_failed", "lock_conflict"])
async def test_a_transient_failure_gives_the_task_back_to_pending_with_its_reason(
    stack: Stack, scenario: str
) -> None:
    tid = f"{scenario}-1"
    assert await stack.run(tid) == scenario
    (fin,) = await stack.finished(tid)
    assert (fin.outcome, fin.exit_code) == (scenario, 1) and fin.error
    history = await stack.history(tid)
    assert (history.task.status, history.task.status_reason) == ("pending", scenario)
    assert not [e for _, e in history.events if isinstance(e, tasks.TaskFailed)]
    assert not [e for e in await stack.agent_events() if isinstance(e, AgentCooldownStarted)]


async def test_a_stuck_session_is_revived_the_first_time_and_fails_its_task_the_second(
    stack: Stack,
) -> None:
    assert await stack.run("stuck-1") == "session_revived"
    assert stack.sessions()["status"] == "idle"
    history = await stack.history("stuck-1")
    assert (history.task.status, history.task.status_reason) == ("pending", "session_revived")
    assert stack.d.stuck == {"stuck-1": 1}

    assert await stack.again("stuck-1") == "session_stuck"
    assert [(f.outcome, f.exit_code) for f in await stack.finished("stuck-1")] == [
        ("session_revived", None),
        ("session_stuck", None),
    ]
    (failed,) = [
        e for _, e in (await stack.history("stuck-1")).events if isinstance(e, tasks.TaskFailed)
    ]
    assert (failed.error, failed.kind) == ("session_stuck", "system")
    assert stack.d.stuck == {}


async def test_a_compacting_session_is_waited_for_then_its_task_is_given_back(
    stack: Stack,
) -> None:
    assert await stack.run("compacting-1") == "compact_failed"
    (fin,) = await stack.finished("compacting-1")
    assert (fin.outcome, fin.exit_code) == ("compact_failed", None)
    history = await stack.history("compacting-1")
    assert (history.task.status, history.task.status_reason) == ("pending", "compact_failed")
    assert stack.sessions()["status"] == "running"  # compacting is not stuck: nothing revived
    assert stack.d.compact_waits == {} and stack.d.stuck == {}


async def test_an_auth_failure_fails_the_task_as_a_system_error(stack: Stack) -> None:
    assert await stack.run("auth_failed-1") == "auth_failed"
    events = [e for _, e in (await stack.history("auth_failed-1")).events]
    assert [f.outcome for f in events if isinstance(f, tasks.TaskAttemptFinished)] == [
        "auth_failed"
    ]
    (failed,) = [e for e in events if isinstance(e, tasks.TaskFailed)]
    assert (failed.error, failed.kind, failed.agent_id) == ("auth_failed", "system", AGENT)


async def test_an_agent_that_fails_its_task_itself_is_recorded_as_agent_failed_without_a_second_failure(
    stack: Stack,
) -> None:
    assert await stack.run("agent_failed-1") == "agent_failed"
    events = [e for _, e in (await stack.history("agent_failed-1")).events]
    (fin,) = [e for e in events if isinstance(e, tasks.TaskAttemptFinished)]
    assert (fin.outcome, fin.task_status_at_exit) == ("agent_failed", "failed")
    assert [e.agent_id for e in events if isinstance(e, tasks.TaskFailed)] == [AGENT]


async def test_an_unknown_crash_and_an_unexpected_fallback_fail_the_task(stack: Stack) -> None:
    assert await stack.run("agent_error-1") == "agent_error"
    assert await stack.run("fallback-1") == "fallback_timeout"
    for tid, error in (("agent_error-1", "agent_error"), ("fallback-1", "unexpected_fallback")):
        (failed,) = [
            e for _, e in (await stack.history(tid)).events if isinstance(e, tasks.TaskFailed)
        ]
        assert failed.error == error


async def test_a_hanging_agent_is_killed_after_the_monitor_limit_and_its_task_fails(
    stack: Stack,
) -> None:
    assert await stack.run("hang-1") == "max_monitor_timeouts"
    (fin,) = await stack.finished("hang-1")
    assert fin.outcome == "max_monitor_timeouts" and fin.exit_code is None
    (failed,) = [
        e for _, e in (await stack.history("hang-1")).events if isinstance(e, tasks.TaskFailed)
    ]
    assert failed.error == "max_monitor_timeouts"


async def test_the_outcome_is_not_recorded_twice_for_one_attempt(stack: Stack) -> None:
    await stack.run("completed-2")
    (start,) = await stack.started("completed-2")
    again = Exit(0, '{"transport": "gateway"}', "", 1, None, 0)
    await stack.d._finish(AGENT, "completed-2", start.attempt, 0, again, 0)
    assert len(await stack.finished("completed-2")) == 1


async def test_the_loop_wakes_an_idle_agent_with_actionable_work_and_respects_its_cooldown(
    stack: Stack, tmp_path: Path
) -> None:
    from services.projector import ProjectorHost
    from tests.hosting import running

    await stack.client.publish(AGENT, AgentHeartbeat(status="idle"))
    await stack.create("api_error-2")
    await stack.create("completed-3", depends_on=["api_error-2"])
    async with running(ProjectorHost(stack.settings, stack.nc, ["agents", "tasks"])):
        queries = stack.d.queries

        async def seen() -> bool:
            rows = (await queries.query("tasks", "actionable", agent=AGENT, limit=5)).records()
            agents = (await queries.query("agents", "list")).records()
            return bool(rows) and bool(agents)

        await eventually(seen, what="projector caught up")
        assert await stack.d.tick() == ["api_error-2"]
        await asyncio.gather(*stack.d.watched)
        assert [f.outcome for f in await stack.finished("api_error-2")] == ["api_error"]

        async def cooling() -> bool:
            (row,) = (await queries.query("agents", "get", id=AGENT)).records()
            return row["cooldown_until"] is not None

        await eventually(cooling, what="cooldown in the agents read model")
        assert await stack.d.tick() == []  # cooling down: not woken although work is waiting


@contextlib.asynccontextmanager
async def webhook(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """A local wake endpoint; yields its URL."""
    app = web.Application()
    app.router.add_post("/wake", handler)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/wake"))
    finally:
        await server.close()


async def test_nats_and_webhook_modes_publish_the_wake_and_record_woken(
    stack: Stack, tmp_path: Path, nats_url: str
) -> None:
    got: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.json_response({"ok": True})

    async with webhook(hook) as url:
        sub = await stack.nc.subscribe(wake_subject(AGENT))
        via_nats = Dispatcher(settings_for(tmp_path, nats_url, dispatch_mode="nats"), stack.nc)
        created = await stack.create("wake-1")
        assert await via_nats.claim(AGENT, "wake-1")
        assert await via_nats.dispatch(AGENT, created["task"]) is None
        wake = msgspec.json.decode((await sub.next_msg(timeout=10)).data)
        assert wake["task_id"] == "wake-1" and "wake-1" in wake["message"]

        hooked = Dispatcher(
            settings_for(
                tmp_path,
                nats_url,
                dispatch_mode="webhook",
                dispatch_webhook_url=url,
            ),
            stack.nc,
        )
        created = await stack.create("wake-2")
        assert await hooked.claim(AGENT, "wake-2")
        await hooked.dispatch(AGENT, created["task"])
        assert [g["task_id"] for g in got] == ["wake-2"]
        await hooked.waker.close()
        woken = [e for e in await stack.agent_events() if isinstance(e, AgentWoken)]
        assert [(w.via, w.task_id) for w in woken] == [("nats", "wake-1"), ("webhook", "wake-2")]
        assert [s.agent_id for s in await stack.started("wake-2")] == [AGENT]


async def test_a_wake_that_cannot_be_delivered_gives_the_task_back(
    stack: Stack, tmp_path: Path, nats_url: str
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async with webhook(refuse) as url:
        d = Dispatcher(
            settings_for(tmp_path, nats_url, dispatch_mode="webhook", dispatch_webhook_url=url),
            stack.nc,
        )
        created = await stack.create("wake-3")
        assert await d.claim(AGENT, "wake-3")
        assert await d.dispatch(AGENT, created["task"]) == "wake_failed"
        await d.waker.close()
        task = (await stack.history("wake-3")).task
        assert task.status == "pending" and (task.status_reason or "").startswith("wake_failed")
        assert not [e for e in await stack.agent_events() if isinstance(e, AgentWoken)]


def test_settings_name_what_a_dispatch_mode_needs() -> None:
    from services.settings import SettingsError, load

    with pytest.raises(SettingsError, match="dispatch_command"):
        load(env={"AGENTLEDGER_DISPATCH_MODE": "command"})
    with pytest.raises(SettingsError, match="dispatch_webhook_url"):
        load(env={"AGENTLEDGER_DISPATCH_MODE": "webhook"})
    with pytest.raises(SettingsError, match="AGENTLEDGER_DISPATCH_MODE"):
        load(env={"AGENTLEDGER_DISPATCH_MODE": "sometimes"})
    s = load(env={})
    assert (s.dispatch_mode, s.agent_timeout_s, s.max_monitor_timeouts) == ("off", 630.0, 3)


def test_up_runs_the_dispatcher_only_when_it_is_configured() -> None:
    from services.up import default_services

    assert "dispatcher" not in default_services(Settings())
    assert "dispatcher" in default_services(Settings(dispatch_mode="nats"))


async def test_each_dispatch_is_a_span_with_its_outcome(stack: Stack, spans: Any) -> None:
    await stack.run("continued-2")
    mine = [s for s in spans.get_finished_spans() if s.name == "dispatch"]
    assert [
        (s.attributes["agentledger.continuation"], s.attributes["agentledger.outcome"])
        for s in mine
    ] == [
        (0, "gateway_timeout"),
        (1, "completed"),
    ]
