"""The tasks decider's failure rules: retries with backoff, fix subtasks, root cause, escalation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from events.tasks import (
    Claim,
    Fail,
    FixIdTooLong,
    FixSpec,
    InvalidTransition,
    NotClaimable,
    NotClaimer,
    NotDue,
    Reopen,
    RequestFixes,
    SubtaskCannotHaveSubtasks,
    SubtasksOpen,
    TaskApproved,
    TaskCreated,
    TaskEscalated,
    TaskFailed,
    TaskFixRequested,
    TaskReopened,
    TaskRetryScheduled,
    TaskRootCauseRequested,
    TaskSubmitted,
    Void,
    backoff_s,
)
from tests.events.tasks.given import (
    CLAIMED,
    CREATED,
    T1,
    WORKING,
    created,
    failures,
    given,
)

# --- failure rules ----------------------------------------------------------------------------


def test_a_system_failure_schedules_a_retry_after_one_second() -> None:
    g = given(*WORKING)
    g.when(Fail(error="timeout", agent_id="architect")).then(
        TaskFailed(error="timeout", agent_id="architect", failures=1),
        TaskRetryScheduled(failures=1, delay_s=1, not_before=g.now + timedelta(seconds=1)),
    )


def test_a_retried_task_is_pending_again_without_claimer_and_not_due_until_the_backoff() -> None:
    g = given(*WORKING).when(Fail(error="timeout")).then_apply()
    g.then_state(status="pending", claimed_by=None, retry_count=1, last_error="timeout",
                 not_before=g.now + timedelta(seconds=1))
    g.when(Claim(agent_id="architect")).then_raises(NotDue, "not due")


@pytest.mark.parametrize(("failures_so_far", "delay"), [(0, 1), (1, 2), (2, 4), (3, 8)])
def test_the_backoff_doubles_with_each_failure(failures_so_far: int, delay: int) -> None:
    g = given(CREATED, *failures(failures_so_far))
    retry = g.when(Fail(error="x")).decided()[-1].event
    assert isinstance(retry, TaskRetryScheduled) and retry.delay_s == delay


def test_the_backoff_never_exceeds_ten_minutes() -> None:
    assert [backoff_s(n) for n in (10, 11, 40)] == [512, 600, 600]


def test_the_third_failure_asks_for_the_root_cause() -> None:
    g = given(CREATED, *failures(2))
    g.when(Fail(error="again")).then(
        TaskFailed(error="again", failures=3),
        TaskRootCauseRequested(failures=3, last_error="again"),
        TaskRetryScheduled(failures=3, delay_s=4, not_before=g.now + timedelta(seconds=4)),
    )


def test_the_fifth_failure_escalates_instead_of_retrying() -> None:
    given(CREATED, *failures(4)).when(Fail(error="boom")).then(
        TaskFailed(error="boom", failures=5),
        TaskEscalated(reason="5 failures, the last: boom"),
    )


def test_five_system_failures_lead_to_requires_manual() -> None:
    g = given(CREATED)
    for i in range(5):
        g = g.when(Claim(agent_id="architect")).then_apply() if i == 0 else g
        g = g.at(g.now + timedelta(minutes=20)).when(Fail(error=f"crash {i}")).then_apply()
    g.then_state(status="requires_manual", retry_count=5, root_cause_requested=True)
    g.when(Claim(agent_id="architect")).then_raises(NotClaimable, "requires_manual")


def test_a_business_failure_creates_fix_subtasks_and_the_parent_waits_in_one_decision() -> None:
    fixes = [FixSpec(error="missing module", fix="preload it", success_criteria="step 4 passes"),
             FixSpec(error="bad path")]
    given(*WORKING).when(Fail(error="step 4", kind="business", agent_id="architect", fixes=fixes)).then(
        TaskFailed(error="step 4", kind="business", agent_id="architect", failures=1),
        (f"FIX-{T1}-001", TaskCreated(
            title=f"Fix {T1}: missing module", project="shop", description="preload it", type="fix",
            priority="P1", parent_id=T1, level=2, root_id=T1, success_criteria="step 4 passes",
            by="architect")),
        (f"FIX-{T1}-002", TaskCreated(
            title=f"Fix {T1}: bad path", project="shop", type="fix", priority="P1", parent_id=T1,
            level=2, root_id=T1, by="architect")),
        TaskFixRequested(fix_ids=[f"FIX-{T1}-001", f"FIX-{T1}-002"]),
    )


def test_a_business_failure_without_fixes_gets_one_fix_named_after_the_error() -> None:
    emitted = given(*WORKING).when(Fail(error="no data", kind="business")).decided()
    assert [(e.task_id, e.event.name) for e in emitted] == [
        (T1, "failed"), (f"FIX-{T1}-001", "created"), (T1, "fix_requested")
    ]


def test_a_parent_in_fix_pending_waits_for_its_fixes_and_then_is_claimable_again() -> None:
    g = given(*WORKING).when(Fail(error="e", kind="business")).then_apply()
    g.then_state(status="fix_pending", fix_ids=(f"FIX-{T1}-001",), claimed_by=None)
    g.when(Claim(agent_id="architect")).then_raises(SubtasksOpen, f"FIX-{T1}-001")
    g.on(f"FIX-{T1}-001").when(Void(by="coo")).then_apply()
    g.when(Claim(agent_id="architect")).then(CLAIMED)


def test_fix_numbers_continue_from_the_parents_history() -> None:
    g = given(*WORKING, TaskFailed(error="e", kind="business"), TaskFixRequested(fix_ids=[f"FIX-{T1}-001"]))
    g.when(RequestFixes(fixes=[FixSpec(error="more")])).then(
        (f"FIX-{T1}-002", TaskCreated(title=f"Fix {T1}: more", project="shop", type="fix",
                                       priority="P1", parent_id=T1, level=2, root_id=T1)),
        TaskFixRequested(fix_ids=[f"FIX-{T1}-002"]),
    )


def test_fix_numbers_skip_ids_already_taken() -> None:
    emitted = given(CREATED, created(f"FIX-{T1}-001")).when(
        RequestFixes(fixes=[FixSpec(error="x")])
    ).decided()
    assert emitted[0].task_id == f"FIX-{T1}-002"


def test_a_fix_id_longer_than_the_id_grammar_allows_is_refused() -> None:
    long_id = "T" * 125
    given((long_id, CREATED)).on(long_id).when(RequestFixes(fixes=[FixSpec(error="x")])).then_raises(
        FixIdTooLong, "exceeds 128 characters"
    )


def test_a_business_failure_of_a_subtask_is_retried_because_subtasks_cannot_have_subtasks() -> None:
    g = given(created("P"), TaskCreated(title="c", parent_id="P", level=2, root_id="P"))
    names = [e.event.name for e in g.when(Fail(error="e", kind="business")).decided()]
    assert names == ["failed", "retry_scheduled"]


def test_fix_subtasks_cannot_be_requested_for_a_subtask() -> None:
    given(created("P"), TaskCreated(title="c", parent_id="P", level=2)).when(
        RequestFixes(fixes=[FixSpec(error="x")])
    ).then_raises(SubtaskCannotHaveSubtasks, f"task {T1} is a subtask of P")


def test_only_the_claimer_reports_a_failure_of_a_claimed_task() -> None:
    given(*WORKING).when(Fail(error="x", agent_id="coo")).then_raises(NotClaimer, "claimed by architect")


def test_a_done_task_cannot_fail() -> None:
    given(*WORKING, TaskSubmitted(agent_id="architect"), TaskApproved(by="coo")).when(
        Fail(error="late")
    ).then_raises(InvalidTransition, "is done and cannot be failed")


def test_a_person_reopens_an_escalated_task_with_a_fresh_retry_budget() -> None:
    g = given(CREATED, *failures(4), TaskFailed(error="e5"), TaskEscalated(reason="5 failures"))
    g.then_state(status="requires_manual")
    g.when(Reopen(by="owner", note="fixed the proxy")).then(TaskReopened(by="owner", note="fixed the proxy"))
    g.when(Reopen(by="owner")).then_apply().then_state(status="pending", retry_count=0)
