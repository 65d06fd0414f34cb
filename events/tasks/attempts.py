"""How an agent run ended, and what the dispatcher does next: pure rules from the blackboard spawner.

An attempt is one run of an agent on a task (`openclaw agent --json ...`, or any wake command).
When the process exits, `classify` turns its exit code, stderr, the JSON meta it printed
(`transport`, `fallbackReason`, `durationMs`) and the task's status at exit into an `Outcome`.
When it does not exit within the agent timeout, `classify_timeout` decides between waiting
longer, reviving a stuck session, and giving up; `timeout_outcome` names how such an attempt
ended. `follow_up` says what each outcome triggers.

The keyword tables are the seed's (A1-A12), in its order: the first rule that matches wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

Outcome = Literal[
    "completed", "gateway_timeout", "agent_failed", "fallback_timeout", "auth_failed",
    "gateway_unreachable", "api_error", "compact_failed", "lock_conflict", "agent_error",
    "session_stuck", "max_monitor_timeouts",
]
TimeoutVerdict = Literal["wait", "revive", "compact_failed", "session_stuck", "max_monitor_timeouts"]
# how an attempt ends besides the 12 outcomes: its stuck session was revived (B1, the first time)
Ending = Outcome | Literal["session_revived"]
Action = Literal["none", "continue", "release", "fail"]

# the agent's part is over: it submitted, finished, failed, or someone else closed the task
FINISHED_AT_EXIT = frozenset(
    {"done", "review", "failed", "cancelled", "void", "requires_manual", "fix_pending"}
)
MAX_CONTINUATIONS = 3
MAX_MONITOR_TIMEOUTS = 3
STUCK_LIMIT = 2  # the second stuck session in a row fails; the first is revived

_AUTH = ("401", "403", "unauthorized", "auth")
_UNREACHABLE = ("ECONNREFUSED", "ETIMEDOUT", "gateway closed", "ECONNRESET")
_API = ("rate_limit", "500", "503", "API error")
_COMPACT = ("compaction-diag", "context-overflow", "timeout-compaction")
_LOCK = ("lock", "busy", "concurrent", "lane task error")


def status_at_exit(status: str | None, failed_during_attempt: bool) -> str | None:
    """The status to classify with: a failure recorded during the attempt counts as `failed`,
    even though the failure rules have already moved the task on (retry, fixes, escalation)."""
    return "failed" if failed_during_attempt else status


def classify(
    exit_code: int, stderr: str, meta: Mapping[str, Any] | None, task_status_at_exit: str | None
) -> Outcome:
    """The outcome of an attempt whose process exited."""
    meta = meta or {}
    transport = meta.get("transport") or ""
    finished = task_status_at_exit in FINISHED_AT_EXIT
    if task_status_at_exit == "failed":  # A4: the agent reported its own failure
        return "agent_failed"
    if exit_code == 0 and transport == "embedded":  # A5/A6: fell back to embedded, never expected
        return "fallback_timeout"
    if exit_code == 0 and finished:  # A1
        return "completed"
    if exit_code == 0:  # A2/A3: the gateway gave up while the task is still open
        if not transport:  # meta missing: stderr tells lock/compact/api errors apart
            lower = stderr.lower()
            if _has(lower, _LOCK):
                return "lock_conflict"
            if _has(lower, ("compaction-diag", "context-overflow")):
                return "compact_failed"
            if _has(lower, ("rate_limit", "500", "503")):
                return "api_error"
        return "gateway_timeout"
    for words, outcome in _NONZERO:
        if _has(stderr, words):
            return outcome
    return "agent_error"  # A12


_NONZERO: tuple[tuple[tuple[str, ...], Outcome], ...] = (
    (_AUTH, "auth_failed"),  # A7
    (_UNREACHABLE, "gateway_unreachable"),  # A8
    (_API, "api_error"),  # A9: 429 and 5xx
    (_COMPACT, "compact_failed"),  # A10
    (_LOCK, "lock_conflict"),  # A11
)


def _has(text: str, words: tuple[str, ...]) -> bool:
    return any(w in text for w in words)


def classify_timeout(
    monitor_timeouts: int,
    *,
    session_stuck: bool = False,
    stuck_count: int = 0,
    compacting: bool = False,
    compact_waits: int = 0,
    max_monitor_timeouts: int = MAX_MONITOR_TIMEOUTS,
) -> TimeoutVerdict:
    """The process outlived the agent timeout again; counts include this timeout.

    `session_stuck`: the session says running but its lock's process is dead (B1): revive it the
    first time, give up the second. `compacting`: a compaction is under way (B2): wait without
    counting, up to `max_monitor_timeouts` extra waits. Otherwise (B3/B4) wait until the limit.
    """
    if session_stuck:
        return "session_stuck" if stuck_count >= STUCK_LIMIT else "revive"
    if compacting:
        return "compact_failed" if compact_waits >= max_monitor_timeouts else "wait"
    return "max_monitor_timeouts" if monitor_timeouts >= max_monitor_timeouts else "wait"


def timeout_outcome(verdict: TimeoutVerdict) -> Ending:
    """The recorded ending of an attempt killed after `verdict` (never "wait"): a revive is not a
    failure of the task, so it is an ending of its own, `session_revived`."""
    if verdict == "wait":
        raise ValueError("a waiting attempt has not ended")
    return "session_revived" if verdict == "revive" else verdict


class FollowUp(NamedTuple):
    """What the dispatcher does after an outcome.

    - `continue`: wake the same session again with the continuation prompt (`StartAttempt` with
      `continuation + 1`);
    - `release`: `Release(reason=outcome)`: the task goes back to pending for a later dispatch;
    - `fail`: `Fail(kind="system", error=reason)`: the failure rules apply (backoff, escalation);
    - `none`: the task already says how it went.
    `cooldown`: start the agent's cooldown (429); `kill`: the process is still running, end it.
    """

    action: Action
    reason: str
    cooldown: bool = False
    kill: bool = False


_FOLLOW_UPS: dict[str, FollowUp] = {
    "completed": FollowUp("none", "completed"),
    "agent_failed": FollowUp("none", "the agent reported the failure"),
    "fallback_timeout": FollowUp("fail", "unexpected_fallback"),
    "auth_failed": FollowUp("fail", "auth_failed"),
    "agent_error": FollowUp("fail", "agent_error"),
    "gateway_unreachable": FollowUp("release", "gateway_unreachable"),
    "api_error": FollowUp("release", "api_error", cooldown=True),
    "compact_failed": FollowUp("release", "compact_failed"),
    "lock_conflict": FollowUp("release", "lock_conflict"),
    "session_stuck": FollowUp("fail", "session_stuck", kill=True),
    # B1 the first time: the session file says idle again, the task waits for its next dispatch
    "session_revived": FollowUp("release", "session_revived", kill=True),
    "max_monitor_timeouts": FollowUp("fail", "max_monitor_timeouts", kill=True),
}


def follow_up(
    outcome: Ending, continuation_count: int, max_continuations: int = MAX_CONTINUATIONS
) -> FollowUp:
    """`continuation_count`: continuations of this session already made.

    Only `gateway_timeout` continues the same session, at most `max_continuations` times; after
    that the task fails (a system error, so backoff and escalation apply).
    """
    if outcome == "gateway_timeout":
        if continuation_count < max_continuations:
            return FollowUp("continue", f"continuation {continuation_count + 1} of {max_continuations}")
        return FollowUp("fail", "max_continuations")
    return _FOLLOW_UPS[outcome]
