"""Attempt outcomes and their follow-ups: one table row per classified way an agent run ends."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from events.tasks.attempts import (
    FollowUp,
    Outcome,
    classify,
    classify_timeout,
    follow_up,
    status_at_exit,
    timeout_outcome,
)

GATEWAY = {"transport": "gateway", "durationMs": 1234}
EMBEDDED = {"transport": "embedded", "fallbackReason": "gateway timeout", "durationMs": 600000}

# exit code, stderr, meta, task status at exit -> outcome (the seed's A1..A12)
EXITS: list[tuple[str, int, str, dict[str, Any] | None, str | None, Outcome]] = [
    ("A1 the agent submitted for review", 0, "", GATEWAY, "review", "completed"),
    ("A1 the task is done", 0, "", GATEWAY, "done", "completed"),
    ("A1 someone cancelled the task meanwhile", 0, "", GATEWAY, "cancelled", "completed"),
    ("A2 the gateway timed out, task still working", 0, "", GATEWAY, "working", "gateway_timeout"),
    ("A3 no meta at all, task still claimed", 0, "", None, "claimed", "gateway_timeout"),
    ("A4 the agent marked the task failed", 0, "", GATEWAY, "failed", "agent_failed"),
    ("A4 failed wins even with a non-zero exit", 1, "ECONNREFUSED", None, "failed", "agent_failed"),
    ("A5 embedded fallback, task finished", 0, "", EMBEDDED, "review", "fallback_timeout"),
    ("A6 embedded fallback, task still open", 0, "", EMBEDDED, "working", "fallback_timeout"),
    ("A7 401 from the gateway", 1, "Error: 401 Unauthorized", None, "working", "auth_failed"),
    ("A7 403", 1, "HTTP 403", None, "working", "auth_failed"),
    ("A8 connection refused", 1, "connect ECONNREFUSED 127.0.0.1:18789", None, "working",
     "gateway_unreachable"),
    ("A8 gateway closed", 1, "gateway closed (1006)", None, "working", "gateway_unreachable"),
    ("A9 rate limited (429)", 1, "rate_limit_error: 429", None, "working", "api_error"),
    ("A9 upstream 503", 1, "upstream returned 503", None, "working", "api_error"),
    ("A9 API error", 1, "API error: overloaded", None, "working", "api_error"),
    ("A10 context overflow", 1, "context-overflow while compacting", None, "working",
     "compact_failed"),
    ("A11 session lock held", 1, "session file lock held by pid 42", None, "working",
     "lock_conflict"),
    ("A11 lane task error", 1, "lane task error", None, "working", "lock_conflict"),
    ("A12 anything else", 2, "Traceback: KeyError", None, "working", "agent_error"),
    ("A12 a crash with empty stderr", 137, "", None, None, "agent_error"),
    ("P2 exit 0 without meta, lock in stderr", 0, "Session BUSY", None, "working",
     "lock_conflict"),
    ("P2 exit 0 without meta, compaction in stderr", 0, "compaction-diag: failed", None,
     "working", "compact_failed"),
    ("P2 exit 0 without meta, rate limit in stderr", 0, "RATE_LIMIT hit", None, "working",
     "api_error"),
    ("P2 stderr is not consulted when the meta names a transport", 0, "lock", GATEWAY, "working",
     "gateway_timeout"),
]


@pytest.mark.parametrize(
    ("exit_code", "stderr", "meta", "status", "expected"),
    [row[1:] for row in EXITS],
    ids=[row[0] for row in EXITS],
)
def test_an_exited_attempt_is_classified_by_the_seed_rules(
    exit_code: int, stderr: str, meta: dict[str, Any] | None, status: str | None, expected: Outcome
) -> None:
    assert classify(exit_code, stderr, meta, status) == expected


# monitor timeouts so far (incl. this one), keywords -> verdict (the seed's B1..B4)
TIMEOUTS: list[tuple[str, int, dict[str, Any], str]] = [
    ("B1 a stuck session is revived the first time", 1, {"session_stuck": True, "stuck_count": 1},
     "revive"),
    ("B1 a session stuck twice fails", 1, {"session_stuck": True, "stuck_count": 2},
     "session_stuck"),
    ("B2 a compaction is waited for without counting", 5, {"compacting": True, "compact_waits": 1},
     "wait"),
    ("B2 a compaction that outlasts three waits fails", 1,
     {"compacting": True, "compact_waits": 3}, "compact_failed"),
    ("B3 the first timeout waits again", 1, {}, "wait"),
    ("B3 the second timeout waits again", 2, {}, "wait"),
    ("B4 the third timeout gives up", 3, {}, "max_monitor_timeouts"),
    ("B4 the limit is configurable", 2, {"max_monitor_timeouts": 2}, "max_monitor_timeouts"),
]


@pytest.mark.parametrize(
    ("timeouts", "kw", "expected"), [row[1:] for row in TIMEOUTS], ids=[row[0] for row in TIMEOUTS]
)
def test_a_running_attempt_past_its_timeout_is_judged_by_the_seed_rules(
    timeouts: int, kw: dict[str, Any], expected: str
) -> None:
    assert classify_timeout(timeouts, **kw) == expected


def test_the_tables_reach_every_outcome() -> None:
    reached = {row[-1] for row in EXITS} | {row[-1] for row in TIMEOUTS}
    assert set(get_args(Outcome)) <= reached


def test_a_failure_recorded_during_the_attempt_classifies_as_agent_failed() -> None:
    # the failure rules already moved the task back to pending (retry scheduled)
    assert classify(0, "", GATEWAY, status_at_exit("pending", failed_during_attempt=True)) == (
        "agent_failed"
    )
    assert status_at_exit("working", failed_during_attempt=False) == "working"


# outcome -> what the dispatcher does
FOLLOW_UPS: list[tuple[Outcome, FollowUp]] = [
    ("completed", FollowUp("none", "completed")),
    ("agent_failed", FollowUp("none", "the agent reported the failure")),
    ("fallback_timeout", FollowUp("fail", "unexpected_fallback")),
    ("auth_failed", FollowUp("fail", "auth_failed")),
    ("agent_error", FollowUp("fail", "agent_error")),
    ("gateway_unreachable", FollowUp("release", "gateway_unreachable")),
    ("api_error", FollowUp("release", "api_error", cooldown=True)),
    ("compact_failed", FollowUp("release", "compact_failed")),
    ("lock_conflict", FollowUp("release", "lock_conflict")),
    ("session_stuck", FollowUp("fail", "session_stuck", kill=True)),
    ("max_monitor_timeouts", FollowUp("fail", "max_monitor_timeouts", kill=True)),
    ("session_revived", FollowUp("release", "session_revived", kill=True)),
]


@pytest.mark.parametrize(("outcome", "expected"), FOLLOW_UPS, ids=[o for o, _ in FOLLOW_UPS])
def test_each_outcome_has_its_follow_up(outcome: Outcome, expected: FollowUp) -> None:
    assert follow_up(outcome, 0) == expected


def test_every_outcome_has_a_follow_up() -> None:
    assert {o for o, _ in FOLLOW_UPS} | {"gateway_timeout"} == set(get_args(Outcome)) | {
        "session_revived"
    }


def test_a_stuck_session_revived_the_first_time_gives_the_task_back_for_a_later_dispatch() -> None:
    # given a session that says running while its lock's process is dead, for the first time
    verdict = classify_timeout(1, session_stuck=True, stuck_count=1)
    # when the attempt is ended on that verdict
    ending = timeout_outcome(verdict)
    # then it is recorded as revived and the task is released with that reason, not failed
    assert (verdict, ending) == ("revive", "session_revived")
    assert follow_up(ending, 0) == FollowUp("release", "session_revived", kill=True)


@pytest.mark.parametrize("verdict", ["compact_failed", "session_stuck", "max_monitor_timeouts"])
def test_other_timeout_verdicts_end_the_attempt_with_their_own_outcome(verdict: Any) -> None:
    assert timeout_outcome(verdict) == verdict
    assert follow_up(timeout_outcome(verdict), 0).action in ("release", "fail")


def test_a_waiting_attempt_has_no_outcome_yet() -> None:
    with pytest.raises(ValueError, match="not ended"):
        timeout_outcome("wait")


@pytest.mark.parametrize("done", [0, 1, 2])
def test_a_gateway_timeout_continues_the_same_session_up_to_three_times(done: int) -> None:
    assert follow_up("gateway_timeout", done) == FollowUp("continue", f"continuation {done + 1} of 3")


def test_a_fourth_gateway_timeout_fails_the_task() -> None:
    assert follow_up("gateway_timeout", 3) == FollowUp("fail", "max_continuations")


def test_only_a_gateway_timeout_ever_continues() -> None:
    assert [o for o in get_args(Outcome) if follow_up(o, 0).action == "continue"] == [
        "gateway_timeout"
    ]


def test_only_an_api_error_cools_the_agent_down() -> None:
    assert [o for o in get_args(Outcome) if follow_up(o, 0).cooldown] == ["api_error"]
