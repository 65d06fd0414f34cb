"""The tasks decider: one given/when/then test per transition and rule, no server, no mock.

`given(...)` folds past events with `evolve` into a `Board` (each one minute after the previous,
stream seq 1, 2, ...): a bare event belongs to the task under test (T1), `("T2", event)` to another
task. `when(cmd)` runs `decide` for T1 (or `.on(id)`) against that board; `then(...)` compares the
decided events the same way, `then_raises(error, match)` the refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import get_args

import msgspec
import pytest
from hypothesis import given as hyp_given
from hypothesis import settings
from hypothesis import strategies as st

from events import codec
from events.registry import events_of
from events.tasks import (
    VERBS,
    AddOutput,
    AlreadyExists,
    Approve,
    AssignedToOther,
    Block,
    Board,
    Cancel,
    Claim,
    Comment,
    CountRound,
    Create,
    DependenciesOpen,
    Emitted,
    Fail,
    FinishAttempt,
    FixIdTooLong,
    FixSpec,
    InvalidDependency,
    InvalidTransition,
    NotClaimable,
    NotClaimer,
    NotDue,
    ParentClosed,
    Progress,
    Reject,
    Release,
    Reopen,
    RequestFixes,
    Start,
    StartAttempt,
    Status,
    Submit,
    SubtaskCannotHaveSubtasks,
    SubtasksOpen,
    Task,
    TaskApproved,
    TaskAttemptFinished,
    TaskAttemptStarted,
    TaskBlocked,
    TaskCancelled,
    TaskClaimed,
    TaskCommand,
    TaskCommented,
    TaskCreated,
    TaskEscalated,
    TaskEvent,
    TaskFailed,
    TaskFixRequested,
    TaskOutputAdded,
    TaskProgressed,
    TaskRejected,
    TaskReleased,
    TaskReopened,
    TaskRetryScheduled,
    TaskRootCauseRequested,
    TaskRoundCounted,
    TaskRoundWarning,
    TaskRuleError,
    TaskStarted,
    TaskSubmitted,
    TaskUnblocked,
    TaskVoided,
    Unblock,
    UnknownTask,
    Void,
    actionable,
    backoff_s,
    decide,
    evolve,
    initial_state,
    is_actionable,
)

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
T1 = "TC-FLOW-001"
Step = TaskEvent | tuple[str, TaskEvent]


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def _addressed(step: Step, default: str) -> Emitted:
    return Emitted(*step) if isinstance(step, tuple) else Emitted(default, step)


@dataclass
class Given:
    board: Board
    reasons: list[str | None] = field(default_factory=list)
    now: datetime = T0
    target: str = T1

    @property
    def state(self) -> Task:
        return self.board.get(self.target) or initial_state(self.target)

    def on(self, task_id: str) -> Given:
        return Given(self.board, self.reasons, self.now, task_id)

    def at(self, now: datetime) -> Given:
        return Given(self.board, self.reasons, now, self.target)

    def when(self, cmd: TaskCommand) -> When:
        return When(self, cmd)

    def then_state(self, **expected: object) -> None:
        assert {k: getattr(self.state, k) for k in expected} == expected

    def then_noop(self, reason: str) -> None:
        assert self.reasons[-1] is not None and reason in self.reasons[-1], self.reasons[-1]


@dataclass
class When:
    given: Given
    cmd: TaskCommand

    def decided(self) -> list[Emitted]:
        g = self.given
        return decide(self.cmd, g.state, g.board, g.now)

    def then(self, *events: Step) -> None:
        assert self.decided() == [_addressed(e, self.given.target) for e in events]

    def then_raises(self, error: type[TaskRuleError], match: str) -> None:
        with pytest.raises(error, match=match):
            self.decided()

    def then_apply(self) -> Given:
        """Fold the decided events into the board; every one must apply (no no-op)."""
        g = self.given
        for task_id, event in self.decided():
            state = g.board.get(task_id) or initial_state(task_id)
            state, reason = evolve(state, event, g.now, seq=len(g.reasons) + 1)
            assert reason is None, reason
            g.board.put(state)
            g.reasons.append(reason)
        return g


def given(*steps: Step) -> Given:
    board, reasons = Board(), []
    for i, step in enumerate(steps):
        task_id, event = _addressed(step, T1)
        state, reason = evolve(board.get(task_id) or initial_state(task_id), event, at(i), seq=i + 1)
        board.put(state)
        reasons.append(reason)
    return Given(board, reasons, at(len(steps)))


CREATED = TaskCreated(title="end-to-end flow", project="shop", priority="P1")
CLAIMED = TaskClaimed(agent_id="architect")
STARTED = TaskStarted(agent_id="architect")
WORKING = (CREATED, CLAIMED, STARTED)


def created(task_id: str, **kw: object) -> tuple[str, TaskCreated]:
    return task_id, TaskCreated(title=task_id, **kw)  # type: ignore[arg-type]


def failures(n: int, kind: str = "system") -> list[TaskEvent]:
    """n failures each followed by its retry, the task pending again."""
    out: list[TaskEvent] = []
    for i in range(1, n + 1):
        out += [TaskFailed(error=f"e{i}", kind=kind, failures=i),  # type: ignore[arg-type]
                TaskRetryScheduled(failures=i, delay_s=backoff_s(i), not_before=T0)]
    return out


# --- create -----------------------------------------------------------------------------------


def test_a_new_task_is_created_with_its_fields() -> None:
    given().when(Create(title="end-to-end flow", project="shop", priority="P1")).then(CREATED)


def test_a_created_task_is_pending_with_its_creation_sequence() -> None:
    given(("T0", CREATED), CREATED).then_state(status="pending", created_seq=2, level=1, created_at=at(1))


def test_a_task_cannot_be_created_twice() -> None:
    given(CREATED).when(Create(title="again")).then_raises(AlreadyExists, f"task {T1} already exists")


def test_a_subtask_takes_its_level_and_root_from_its_parent() -> None:
    given(created("P", project="shop")).when(Create(title="child", parent_id="P")).then(
        TaskCreated(title="child", parent_id="P", level=2, root_id="P")
    )


def test_a_subtask_cannot_have_subtasks() -> None:
    given(created("P"), created("C", parent_id="P", level=2, root_id="P")).when(
        Create(title="grandchild", parent_id="C")
    ).then_raises(SubtaskCannotHaveSubtasks, "task C is a subtask of P and cannot have subtasks")


def test_a_subtask_of_an_unknown_parent_is_refused() -> None:
    given().when(Create(title="x", parent_id="NOPE")).then_raises(UnknownTask, "parent task NOPE")


def test_a_subtask_of_a_cancelled_parent_is_refused() -> None:
    given(created("P"), ("P", TaskCancelled())).when(Create(title="x", parent_id="P")).then_raises(
        ParentClosed, "parent P is cancelled"
    )


def test_a_dependency_on_an_unknown_task_is_refused_naming_it() -> None:
    given(created("A")).when(Create(title="x", depends_on=["A", "B", "C"])).then_raises(
        UnknownTask, "depends on unknown tasks B, C"
    )


def test_a_task_cannot_depend_on_itself() -> None:
    given().when(Create(title="x", depends_on=[T1])).then_raises(InvalidDependency, "itself")


def test_commands_on_a_task_that_does_not_exist_are_refused() -> None:
    given().when(Claim(agent_id="architect")).then_raises(UnknownTask, f"task {T1} does not exist")


# --- claim ------------------------------------------------------------------------------------


def test_a_pending_task_can_be_claimed() -> None:
    given(CREATED).when(Claim(agent_id="architect")).then(CLAIMED)


def test_a_claimed_task_is_refused_to_another_agent_naming_the_claimer() -> None:
    given(CREATED, CLAIMED).when(Claim(agent_id="coo")).then_raises(
        NotClaimable, "task TC-FLOW-001 is claimed by architect"
    )


def test_a_claim_repeated_by_the_claimer_records_nothing() -> None:
    given(CREATED, CLAIMED).when(Claim(agent_id="architect")).then()


def test_a_claim_waits_for_every_dependency_naming_the_open_ones() -> None:
    given(created("A"), created("B"), ("A", TaskClaimed(agent_id="x")),
          TaskCreated(title="t", depends_on=["A", "B"])).when(Claim(agent_id="architect")).then_raises(
        DependenciesOpen, f"task {T1} waits for A, B"
    )


def test_a_claim_is_allowed_once_every_dependency_is_done() -> None:
    done = [("A", TaskClaimed(agent_id="x")), ("A", TaskStarted(agent_id="x")),
            ("A", TaskSubmitted(agent_id="x")), ("A", TaskApproved(by="coo"))]
    given(created("A"), *done, TaskCreated(title="t", depends_on=["A"])).when(
        Claim(agent_id="architect")
    ).then(CLAIMED)


def test_a_task_is_not_claimable_before_not_before() -> None:
    given(TaskCreated(title="t", not_before=at(30))).when(Claim(agent_id="architect")).then_raises(
        NotDue, "not due before 2026-11-21T09:30"
    )


def test_a_parent_is_not_claimable_while_a_subtask_is_open() -> None:
    given(CREATED, created("C1", parent_id=T1, level=2)).when(Claim(agent_id="a")).then_raises(
        SubtasksOpen, f"task {T1} waits for its subtasks C1"
    )


def test_a_subtask_of_a_void_parent_is_not_claimable() -> None:
    given(created("P"), created(T1, parent_id="P", level=2), ("P", TaskVoided())).when(
        Claim(agent_id="a")
    ).then_raises(ParentClosed, "parent P is void")


def test_a_task_assigned_to_an_agent_is_refused_to_others() -> None:
    given(TaskCreated(title="t", assignee="qa")).when(Claim(agent_id="architect")).then_raises(
        AssignedToOther, "assigned to qa"
    )


def test_a_done_task_is_not_claimable() -> None:
    given(*WORKING, TaskSubmitted(agent_id="architect"), TaskApproved(by="coo")).when(
        Claim(agent_id="a")
    ).then_raises(NotClaimable, f"task {T1} is done")


# --- start, progress, submit, review ----------------------------------------------------------


def test_the_claimer_starts_its_task() -> None:
    given(CREATED, CLAIMED).when(Start(agent_id="architect")).then(STARTED)


def test_another_agent_cannot_start_a_claimed_task() -> None:
    given(CREATED, CLAIMED).when(Start(agent_id="coo")).then_raises(
        NotClaimer, "claimed by architect, not coo"
    )


def test_an_unclaimed_task_cannot_be_started() -> None:
    given(CREATED).when(Start(agent_id="architect")).then_raises(InvalidTransition, "is pending")


def test_the_claimer_reports_progress() -> None:
    given(*WORKING).when(Progress(agent_id="architect", progress=80, note="step 4")).then(
        TaskProgressed(agent_id="architect", progress=80, note="step 4")
    )
    given(*WORKING, TaskProgressed(agent_id="architect", progress=80)).then_state(progress=80)


def test_submitting_moves_a_working_task_to_review() -> None:
    given(*WORKING).when(Submit(agent_id="architect", summary="ok")).then(
        TaskSubmitted(agent_id="architect", summary="ok")
    )
    given(*WORKING, TaskSubmitted(agent_id="architect")).then_state(status="review")


def test_approving_a_task_in_review_makes_it_done() -> None:
    g = given(*WORKING, TaskSubmitted(agent_id="architect"))
    g.when(Approve(by="coo")).then(TaskApproved(by="coo"))
    g.when(Approve(by="coo")).then_apply().then_state(status="done", finished_at=g.now)


def test_rejecting_sends_the_task_back_to_pending_without_claimer() -> None:
    g = given(*WORKING, TaskSubmitted(agent_id="architect"))
    g.when(Reject(by="coo", reason="tests missing")).then(TaskRejected(by="coo", reason="tests missing"))
    g.when(Reject(by="coo", reason="redo")).then_apply().then_state(status="pending", claimed_by=None)


def test_only_a_task_in_review_can_be_approved() -> None:
    given(*WORKING).when(Approve(by="coo")).then_raises(InvalidTransition, "working and cannot be approved")


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


# --- rounds -----------------------------------------------------------------------------------


def test_a_round_is_counted() -> None:
    given(*WORKING).when(CountRound(agent_id="architect")).then(TaskRoundCounted(round=1, agent_id="architect"))


def test_the_round_at_eighty_percent_of_the_limit_warns() -> None:
    steps = [TaskRoundCounted(round=i) for i in range(1, 8)]
    given(TaskCreated(title="t", max_rounds=10), CLAIMED, STARTED, *steps).when(CountRound()).then(
        TaskRoundCounted(round=8), TaskRoundWarning(round=8, max_rounds=10)
    )


def test_the_round_at_the_limit_blocks_the_task_with_reason_max_rounds() -> None:
    steps = [TaskRoundCounted(round=i) for i in range(1, 10)]
    g = given(TaskCreated(title="t", max_rounds=10), CLAIMED, STARTED, *steps)
    g.when(CountRound()).then(TaskRoundCounted(round=10), TaskBlocked(reason="max_rounds"))
    g.when(CountRound()).then_apply().then_state(status="blocked", status_reason="max_rounds", rounds=10)


def test_unblocking_a_round_limit_resumes_the_work_with_a_fresh_round_budget() -> None:
    g = given(TaskCreated(title="t", max_rounds=1), CLAIMED, STARTED, TaskRoundCounted(round=1),
              TaskBlocked(reason="max_rounds"))
    g.when(Unblock(by="coo")).then_apply().then_state(status="working", rounds=0, claimed_by="architect")


def test_rounds_are_not_counted_on_a_task_nobody_works_on() -> None:
    given(CREATED).when(CountRound()).then_raises(InvalidTransition, "cannot be counting rounds")


def test_without_a_round_limit_rounds_are_only_counted() -> None:
    given(*WORKING, *[TaskRoundCounted() for _ in range(99)]).when(CountRound()).then(TaskRoundCounted(round=100))


# --- block, cancel, void, release, comments, outputs, attempts -------------------------------


def test_blocking_remembers_the_status_that_unblocking_returns_to() -> None:
    g = given(*WORKING, TaskBlocked(reason="waiting for credentials"))
    g.then_state(status="blocked", resume_status="working", status_reason="waiting for credentials")
    g.when(Unblock()).then(TaskUnblocked())
    g.when(Unblock()).then_apply().then_state(status="working", resume_status=None)


def test_blocking_a_blocked_task_records_nothing() -> None:
    given(CREATED, TaskBlocked(reason="x")).when(Block(reason="y")).then()


def test_only_a_blocked_task_can_be_unblocked() -> None:
    given(CREATED).when(Unblock()).then_raises(InvalidTransition, "cannot be unblocked")


def test_an_open_task_can_be_cancelled_but_a_done_one_cannot() -> None:
    given(*WORKING).when(Cancel(by="coo", reason="obsolete")).then(TaskCancelled(by="coo", reason="obsolete"))
    given(*WORKING, TaskSubmitted(agent_id="architect"), TaskApproved(by="coo")).when(Cancel()).then_raises(
        InvalidTransition, "is done and cannot be cancelled"
    )


def test_any_task_can_be_voided_once() -> None:
    given(*WORKING).when(Void(by="coo")).then(TaskVoided(by="coo"))
    given(CREATED, TaskVoided()).when(Void()).then()


def test_the_claimer_releases_its_task_back_to_pending() -> None:
    g = given(*WORKING)
    g.when(Release(reason="api_error", agent_id="architect")).then(TaskReleased(reason="api_error", by="architect"))
    g.when(Release(reason="stalled", by="watchdog")).then_apply().then_state(
        status="pending", claimed_by=None, status_reason="stalled"
    )


def test_another_agent_cannot_release_a_claimed_task() -> None:
    given(*WORKING).when(Release(reason="x", agent_id="coo")).then_raises(NotClaimer, "claimed by architect")


def test_a_task_nobody_holds_cannot_be_released() -> None:
    given(CREATED).when(Release(reason="x")).then_raises(InvalidTransition, "pending and cannot be released")


def test_comments_and_outputs_are_recorded_in_any_status() -> None:
    g = given(*WORKING, TaskSubmitted(agent_id="architect"), TaskApproved(by="coo"))
    g.when(Comment(author="coo", body="nice")).then(TaskCommented(author="coo", body="nice"))
    out = AddOutput(agent_id="architect", type="code", title="main.py", content_path="/tmp/main.py")
    g.when(out).then(TaskOutputAdded(agent_id="architect", type="code", title="main.py",
                                     content_path="/tmp/main.py"))
    g.when(out).then_apply().then_state(outputs=1, status="done")


def test_attempts_are_numbered_and_finished_with_their_outcome() -> None:
    g = given(*WORKING, TaskAttemptStarted(agent_id="architect"))
    g.when(StartAttempt(agent_id="architect", session_id="s1", continuation=1)).then(
        TaskAttemptStarted(agent_id="architect", attempt=2, session_id="s1", continuation=1)
    )
    g.when(FinishAttempt(agent_id="architect", outcome="gateway_timeout", exit_code=0)).then(
        TaskAttemptFinished(agent_id="architect", outcome="gateway_timeout", attempt=1, exit_code=0)
    )


def test_an_attempt_is_only_started_for_the_claimer() -> None:
    given(CREATED).when(StartAttempt(agent_id="architect")).then_raises(InvalidTransition, "pending")


# --- evolve: facts that do not fit --------------------------------------------------------------


def test_a_second_claim_published_raw_is_a_noop_naming_the_first_claimer() -> None:
    g = given(CREATED, CLAIMED, TaskClaimed(agent_id="coo"))
    g.then_state(status="claimed", claimed_by="architect", claimed_at=at(1))
    g.then_noop("task TC-FLOW-001 is already claimed by architect")


def test_an_event_before_the_task_exists_is_a_noop() -> None:
    g = given(TaskProgressed(agent_id="architect", progress=10))
    g.then_state(created=False, progress=None)
    g.then_noop("does not exist")


def test_progress_from_an_agent_that_is_not_the_claimer_is_a_noop() -> None:
    g = given(*WORKING, TaskProgressed(agent_id="coo", progress=50))
    g.then_state(progress=None)
    g.then_noop("claimed by architect, not coo")


def test_a_retry_of_a_task_that_has_not_failed_is_a_noop() -> None:
    given(CREATED, TaskRetryScheduled(failures=1, delay_s=1, not_before=T0)).then_noop(
        "is pending: retry_scheduled does not apply"
    )


def test_evolve_never_mutates_the_state_it_is_given() -> None:
    before = given(CREATED).state
    after, _ = evolve(before, CLAIMED, at(5))
    assert before.status == "pending" and after.status == "claimed"


def test_progress_published_as_nats_pub_would_decodes_and_applies() -> None:
    event = codec.decode(f"tasks.{T1}.progressed", b'{"agent_id":"architect","progress":80}')
    given(*WORKING, event).then_state(progress=80)


def test_an_agent_id_that_breaks_the_subject_grammar_is_refused_at_decode() -> None:
    with pytest.raises(Exception, match="agent_id"):
        codec.decode_strict(f"tasks.{T1}.claimed", {"agent_id": "bad.id"})


# --- actionable and ordering ------------------------------------------------------------------


def test_actionable_tasks_are_ordered_by_type_priority_level_and_age() -> None:
    g = given(
        created("creative-P0", type="creative", priority="P0"),
        created("regular-P2", type="regular", priority="P2"),
        created("regular-P1-old", type="regular", priority="P1"),
        created("regular-P1-new", type="regular", priority="P1"),
        created("parent", type="regular", priority="P0"),
        created("fix-P2", type="fix", priority="P2"),
        created("fix-P1-old", type="fix", priority="P1"),
        created("fix-P1-sub", type="fix", priority="P1", parent_id="parent", level=2),
        ("parent", TaskClaimed(agent_id="a")),  # not actionable: claimed (and has an open child)
    )
    assert [t.id for t in actionable(g.board, g.now)] == [
        "fix-P1-sub", "fix-P1-old", "fix-P2", "regular-P1-old", "regular-P1-new", "regular-P2",
        "creative-P0",
    ]


def test_the_actionable_list_leaves_out_every_task_a_claim_would_refuse() -> None:
    g = given(
        created("ok"),
        created("dep-open", depends_on=["ok"]),
        created("not-due", not_before=at(60)),
        created("parent"),
        created("child", parent_id="parent", level=2),
        created("voided-parent"),
        created("orphan", parent_id="voided-parent", level=2),
        ("voided-parent", TaskVoided()),
        created("for-qa", assignee="qa"),
        created("taken"),
        ("taken", TaskClaimed(agent_id="x")),
    )
    assert [t.id for t in actionable(g.board, g.now, agent_id="architect")] == ["child", "ok"]
    assert [t.id for t in actionable(g.board, g.now, agent_id="qa", limit=3)] == ["child", "ok", "for-qa"]
    assert not is_actionable(g.board.get("not-due"), g.board, g.now)  # type: ignore[arg-type]
    assert is_actionable(g.board.get("not-due"), g.board, at(60))  # type: ignore[arg-type]


def test_a_parent_becomes_actionable_when_its_last_child_is_done_or_void() -> None:
    g = given(CREATED, created("C1", parent_id=T1, level=2), created("C2", parent_id=T1, level=2),
              ("C1", TaskVoided()))
    assert not is_actionable(g.state, g.board, g.now)
    g = given(CREATED, created("C1", parent_id=T1, level=2), ("C1", TaskVoided()))
    assert is_actionable(g.state, g.board, g.now)


# --- evolve is total --------------------------------------------------------------------------

EVERY_EVENT: list[TaskEvent] = [
    CREATED, CLAIMED, STARTED, TaskProgressed(agent_id="architect", progress=5),
    TaskSubmitted(agent_id="architect"), TaskApproved(by="coo"), TaskRejected(by="coo"),
    TaskFailed(error="e"), TaskFailed(error="e", kind="business"),
    TaskRetryScheduled(failures=1, delay_s=1, not_before=T0), TaskEscalated(reason="r"),
    TaskFixRequested(fix_ids=["FIX-1"]), TaskRootCauseRequested(failures=3),
    TaskBlocked(reason="max_rounds"), TaskUnblocked(), TaskCancelled(), TaskVoided(),
    TaskReleased(reason="r"), TaskReopened(by="owner"), TaskCommented(author="a", body="b"),
    TaskOutputAdded(agent_id="a", title="t"), TaskRoundCounted(), TaskRoundWarning(round=8, max_rounds=10),
    TaskAttemptStarted(agent_id="a"), TaskAttemptFinished(agent_id="a", outcome="completed"),
    TaskClaimed(agent_id="coo"), TaskCreated(title="dup", parent_id="P", level=2),
]


def test_the_totality_examples_cover_every_registered_task_event() -> None:
    assert {type(e) for e in EVERY_EVENT} == set(events_of("tasks").values())


STATUSES = list(get_args(Status))


@settings(max_examples=300, deadline=None)
@hyp_given(
    status=st.sampled_from(STATUSES),
    created_=st.booleans(),
    claimed_by=st.sampled_from([None, "architect", "coo"]),
    resume=st.sampled_from([None, *STATUSES]),
    event=st.sampled_from(EVERY_EVENT),
)
def test_evolve_never_raises_for_any_event_in_any_status(
    status: str, created_: bool, claimed_by: str | None, resume: str | None, event: TaskEvent
) -> None:
    state = Task(id=T1, created=created_, status=status, claimed_by=claimed_by, resume_status=resume,
                 max_rounds=10, rounds=3)
    new, reason = evolve(state, event, T0)
    assert isinstance(new, Task)
    assert (new is state) == (reason is not None)  # a no-op always says why, a change never


@settings(max_examples=200, deadline=None)
@hyp_given(st.lists(st.sampled_from(EVERY_EVENT), max_size=30))
def test_any_sequence_of_events_folds_to_a_known_status(events: list[TaskEvent]) -> None:
    g = given(*events)
    assert g.state.status in STATUSES
    assert len(g.reasons) == len(events)


def test_every_command_has_its_verb_on_cmd_tasks() -> None:
    assert set(VERBS.values()) == set(get_args(TaskCommand))
    assert {"create", "claim", "start", "progress", "submit", "approve", "reject", "fail", "block",
            "unblock", "cancel", "void", "release", "comment", "add_output", "count_round"} <= set(VERBS)


def test_a_command_refuses_an_unknown_field_naming_it() -> None:
    with pytest.raises(msgspec.ValidationError, match="agnet_id"):
        msgspec.convert({"agnet_id": "architect"}, VERBS["claim"])


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: e.name)
def test_every_event_survives_its_json_payload(event: TaskEvent) -> None:
    assert codec.decode(f"tasks.{T1}.{event.name}", codec.encode(event)) == event
