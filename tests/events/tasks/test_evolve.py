"""evolve is total: facts that do not fit are no-ops with a reason, every event decodes and applies."""

from __future__ import annotations

from typing import get_args

import msgspec
import pytest
from hypothesis import given as hyp_given
from hypothesis import settings
from hypothesis import strategies as st

from events.core import codec
from events.core.registry import events_of
from events.tasks import (
    VERBS,
    Status,
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
    TaskRoundsExtended,
    TaskRoundWarning,
    TaskSubmitted,
    TaskUnblocked,
    TaskVoided,
    evolve,
)
from tests.events.tasks.given import (
    CLAIMED,
    CREATED,
    STARTED,
    T0,
    T1,
    WORKING,
    at,
    given,
)

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
    TaskRoundsExtended(max_rounds=20, by="coo"),
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
