"""Mail between agents: the message decider (given/when/then) and the inbox fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given as hyp_given
from hypothesis import settings
from hypothesis import strategies as st

from events.core import codec
from events.mail import (
    AlreadySent,
    MailEmitted,
    MailEvent,
    MailRead,
    MailReplied,
    MailRuleError,
    MailSent,
    MarkRead,
    Message,
    NotRecipient,
    Send,
    UnknownMessage,
    decide,
    evolve,
    fold_inboxes,
    fold_messages,
    initial_state,
)

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
M1 = "m1"
REQUEST = MailSent(from_agent="coo", to="architect", performative="request", subject="review",
                   body="please review TC-FLOW-001")


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def stream(*steps: tuple[str, MailEvent]) -> list[tuple[str, MailEvent, datetime, int]]:
    return [(mid, event, at(i), i + 1) for i, (mid, event) in enumerate(steps)]


def state_of(mid: str, *steps: tuple[str, MailEvent]) -> Message:
    return fold_messages(stream(*steps)).get(mid) or initial_state(mid)


# --- decide -----------------------------------------------------------------------------------


def test_an_agent_sends_a_message() -> None:
    cmd = Send(from_agent="coo", to="architect", performative="request", subject="review",
               body="please review TC-FLOW-001")
    assert decide(cmd, initial_state(M1), T0) == [MailEmitted(M1, REQUEST)]


def test_a_message_id_cannot_be_sent_twice() -> None:
    with pytest.raises(AlreadySent, match="message m1 was already sent"):
        decide(Send(from_agent="coo", to="qa"), state_of(M1, (M1, REQUEST)), T0)


def test_a_reply_sends_the_reply_and_marks_the_original_replied_in_one_decision() -> None:
    original = state_of(M1, (M1, REQUEST))
    cmd = Send(from_agent="architect", to="coo", subject="re: review", in_reply_to=M1)
    assert decide(cmd, initial_state("m2"), T0, original) == [
        MailEmitted("m2", MailSent(from_agent="architect", to="coo", subject="re: review",
                                   in_reply_to=M1)),
        MailEmitted(M1, MailReplied(agent_id="architect", reply_id="m2")),
    ]


def test_a_reply_to_an_unknown_message_is_refused() -> None:
    cmd = Send(from_agent="architect", to="coo", in_reply_to="nope")
    with pytest.raises(UnknownMessage, match="message nope does not exist"):
        decide(cmd, initial_state("m2"), T0, None)


def test_only_the_recipient_replies_to_a_message() -> None:
    cmd = Send(from_agent="qa", to="coo", in_reply_to=M1)
    with pytest.raises(NotRecipient, match="sent to architect, not qa"):
        decide(cmd, initial_state("m2"), T0, state_of(M1, (M1, REQUEST)))


def test_the_recipient_marks_a_message_read() -> None:
    assert decide(MarkRead(agent_id="architect"), state_of(M1, (M1, REQUEST)), T0) == [
        MailEmitted(M1, MailRead(agent_id="architect"))
    ]


def test_reading_a_read_message_again_records_nothing() -> None:
    state = state_of(M1, (M1, REQUEST), (M1, MailRead(agent_id="architect")))
    assert decide(MarkRead(agent_id="architect"), state, T0) == []


@pytest.mark.parametrize(
    ("state", "agent", "error", "match"),
    [
        (initial_state(M1), "architect", UnknownMessage, "message m1 does not exist"),
        (Message(id=M1, sent=True, to="architect"), "qa", NotRecipient, "not qa"),
    ],
)
def test_only_the_recipient_of_a_sent_message_marks_it_read(
    state: Message, agent: str, error: type[MailRuleError], match: str
) -> None:
    with pytest.raises(error, match=match):
        decide(MarkRead(agent_id=agent), state, T0)


# --- evolve -----------------------------------------------------------------------------------


def test_a_sent_message_records_its_parties_and_time() -> None:
    state = state_of(M1, (M1, REQUEST))
    assert (state.from_agent, state.to, state.performative, state.sent_at, state.read_at) == (
        "coo", "architect", "request", at(0), None
    )


def test_a_second_sent_on_the_same_id_is_a_noop_with_its_reason() -> None:
    state = state_of(M1, (M1, REQUEST))
    again, reason = evolve(state, MailSent(from_agent="qa", to="coo"), at(5))
    assert again is state and reason == "message m1 was already sent"


def test_a_read_by_someone_else_is_a_noop_with_its_reason() -> None:
    state = state_of(M1, (M1, REQUEST))
    after, reason = evolve(state, MailRead(agent_id="qa"), at(5))
    assert after is state and reason == "message m1 was sent to architect, not qa"


def test_a_read_of_an_unknown_message_is_a_noop() -> None:
    state, reason = evolve(initial_state(M1), MailRead(agent_id="qa"), at(0))
    assert not state.sent and reason == "message m1 does not exist"


def test_a_reply_implies_the_message_was_read() -> None:
    state = state_of(M1, (M1, REQUEST), (M1, MailReplied(agent_id="architect", reply_id="m2")))
    assert (state.read_at, state.replied_at, state.reply_ids) == (at(1), at(1), ("m2",))


def test_mail_published_as_nats_pub_would_decodes_with_from_as_the_wire_name() -> None:
    event = codec.decode("mail.m1.sent", b'{"from":"coo","to":"architect","body":"hi"}')
    assert event == MailSent(from_agent="coo", to="architect", body="hi")


# --- inboxes ----------------------------------------------------------------------------------


def test_each_agent_inbox_lists_its_messages_oldest_first_with_unread_and_unanswered_counts() -> None:
    inboxes = fold_inboxes(stream(
        (M1, REQUEST),
        ("m2", MailSent(from_agent="qa", to="architect", subject="fyi")),
        ("m3", MailSent(from_agent="architect", to="coo", subject="done", in_reply_to=M1)),
        (M1, MailReplied(agent_id="architect", reply_id="m3")),
        ("m4", MailSent(from_agent="qa", to="architect", performative="request", subject="help")),
        ("m4", MailRead(agent_id="architect")),
    ))
    assert sorted(inboxes) == ["architect", "coo"]
    architect = inboxes["architect"]
    assert [m.id for m in architect.messages] == [M1, "m2", "m4"]
    assert (architect.unread, architect.unanswered) == (1, 1)  # m2 unread; m4 read, not answered
    assert (inboxes["coo"].unread, inboxes["coo"].unanswered) == (1, 0)


def test_events_that_do_not_apply_leave_inboxes_unchanged() -> None:
    inboxes = fold_inboxes(stream(
        ("m9", MailRead(agent_id="architect")),  # never sent
        (M1, REQUEST),
        (M1, MailRead(agent_id="qa")),  # not the recipient
    ))
    assert [m.id for m in inboxes["architect"].messages] == [M1]
    assert inboxes["architect"].unread == 1


@settings(max_examples=200, deadline=None)
@hyp_given(st.lists(st.tuples(st.sampled_from([M1, "m2"]), st.sampled_from([
    REQUEST, MailSent(from_agent="qa", to="coo"), MailRead(agent_id="architect"),
    MailRead(agent_id="coo"), MailReplied(agent_id="architect", reply_id="m2"),
])), max_size=20))
def test_mail_evolve_is_total_and_unread_never_exceeds_messages(steps: list[tuple[str, MailEvent]]) -> None:
    for box in fold_inboxes(stream(*steps)).values():
        assert 0 <= box.unread <= len(box.messages)
