"""The dispatcher: pure decisions without a server, then the fake agent program driven against a
real nats-server, the real tasks command service and, for the full loop, the real projector.

The fake agent (`tests/fixtures/fake_agent.py`) exits in the way its task id names
(`<scenario>-<n>`); each test checks what the TASKS and AGENTS streams hold afterwards.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from events import tasks
from events.agents import AgentCooldownStarted, AgentHeartbeat, AgentWoken
from services.dispatcher.run import Exit
from services.settings import Settings
from tests.polling import eventually
from tests.services.dispatcher.stack import AGENT, Stack


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
    from services.projector.service import ProjectorHost
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


async def test_every_attempt_is_a_run_log_with_its_outcome_and_output(stack: Stack) -> None:
    from events.runs import RunFinished, RunStarted
    from tests.services.watchdog.streams import events_of

    assert await stack.run("continued-2") == "completed"
    runs = await events_of(stack.nc, "runs")
    started = [e for e in runs if isinstance(e, RunStarted)]
    finished = [e for e in runs if isinstance(e, RunFinished)]
    assert [(s.agent_id, s.task_id, s.log_type) for s in started] == [(AGENT, "continued-2", "attempt")] * 2
    assert [(f.status, f.message) for f in finished] == [
        ("success", "gateway_timeout"), ("success", "completed")
    ]
    assert all(f.duration_ms >= 0 for f in finished)


async def test_the_output_of_a_running_agent_becomes_progress_lines_of_its_run(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import msgspec

    from events.runs import RunFinished, RunFollowing
    from services.dispatcher import runlog
    from tests.services.watchdog.streams import events_of

    monkeypatch.setattr(runlog, "FOLLOW_S", 0.15)
    stack.d.settings = msgspec.structs.replace(stack.settings, agent_timeout_s=30)  # time to chat
    assert await stack.run("chatty-1") == "completed"
    runs = await events_of(stack.nc, "runs")
    lines = [e.line for e in runs if isinstance(e, RunFollowing)]
    # the newest line at each look: progress, and perhaps the JSON meta printed at the very end
    assert sum(line.startswith("working on step") for line in lines) >= 2
    assert len(set(lines)) == len(lines)  # a line is sent once, when it is new
    assert isinstance(runs[-1], RunFinished) and "working on step 10" in runs[-1].content
