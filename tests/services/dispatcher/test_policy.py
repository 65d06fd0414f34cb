"""The dispatcher's pure policy: who may be woken, with which words, by which argv; the watched run."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.dispatcher import policy
from services.dispatcher import session as dispatch_session
from services.dispatcher.run import watch
from services.dispatcher.session import SessionState
from tests.services.dispatcher.stack import NOW

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
