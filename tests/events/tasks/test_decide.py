"""The tasks decider: one given/when/then test per transition and rule, no server, no mock.

`given(...)` folds past events with `evolve` into a `Board` (each one minute after the previous,
stream seq 1, 2, ...): a bare event belongs to the task under test (T1), `("T2", event)` to another
task. `when(cmd)` runs `decide` for T1 (or `.on(id)`) against that board; `then(...)` compares the
decided events the same way, `then_raises(error, match)` the refusal.
"""

from __future__ import annotations

from events.tasks import (
    AddOutput,
    AlreadyExists,
    Approve,
    AssignedToOther,
    Block,
    Cancel,
    Claim,
    Comment,
    CountRound,
    Create,
    DependenciesOpen,
    FinishAttempt,
    InvalidDependency,
    InvalidTransition,
    NotClaimable,
    NotClaimer,
    NotDue,
    ParentClosed,
    Progress,
    Reject,
    Release,
    Start,
    StartAttempt,
    Submit,
    SubtaskCannotHaveSubtasks,
    SubtasksOpen,
    TaskApproved,
    TaskAttemptFinished,
    TaskAttemptStarted,
    TaskBlocked,
    TaskCancelled,
    TaskClaimed,
    TaskCommented,
    TaskCreated,
    TaskOutputAdded,
    TaskProgressed,
    TaskRejected,
    TaskReleased,
    TaskRoundCounted,
    TaskRoundWarning,
    TaskStarted,
    TaskSubmitted,
    TaskUnblocked,
    TaskVoided,
    Unblock,
    UnknownTask,
    Void,
)
from tests.events.tasks.given import (
    CLAIMED,
    CREATED,
    STARTED,
    T1,
    WORKING,
    at,
    created,
    given,
)

# --- create -----------------------------------------------------------------------------------


def test_a_new_task_is_created_with_its_fields() -> None:
    given().when(Create(title="end-to-end flow", project="shop", priority="P1")).then(CREATED)


def test_a_created_task_is_pending_with_its_creation_sequence() -> None:
    given(("T0", CREATED), CREATED).then_state(status="pending", created_seq=2, level=1, created_at=at(1))


def test_a_task_cannot_be_created_twice_with_other_fields() -> None:
    given(CREATED).when(Create(title="again")).then_raises(AlreadyExists, f"task {T1} already exists")


def test_creating_the_same_task_again_with_the_same_fields_changes_nothing() -> None:
    given(CREATED).when(Create(title="end-to-end flow", project="shop", by="architect")).then()


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


def test_extend_rounds_raises_the_limit_and_resumes_a_task_paused_at_it() -> None:
    from events.tasks import ExtendRounds, TaskBlocked, TaskRoundsExtended, TaskUnblocked

    given(
        TaskCreated(title="t", max_rounds=10), TaskClaimed(agent_id="a"),
        TaskBlocked(reason="max_rounds", by="watchdog"),
    ).when(ExtendRounds(max_rounds=20, by="coo")).then(
        TaskRoundsExtended(max_rounds=20, by="coo"), TaskUnblocked(by="coo", note="rounds extended to 20")
    )


def test_extend_rounds_refuses_a_limit_that_is_not_higher() -> None:
    from events.tasks import ExtendRounds

    given(TaskCreated(title="t", max_rounds=10)).when(
        ExtendRounds(max_rounds=10, by="coo")
    ).then_raises(InvalidTransition, "already allows 10 rounds")
