"""The mail aggregate: one message between two agents, on `mail.<message_id>.sent|read|replied`.

Invariants:
- the message id is the subject's aggregate id; a message is sent once, from one agent to one;
- `performative` is `inform` (no answer expected) or `request` (the recipient should reply);
- only the recipient reads a message; reading twice changes nothing;
- a reply is a new message whose `in_reply_to` names the original; the recipient of the original
  replies. Sending it emits two events for two aggregates (`sent` on the reply, `replied` on the
  original), which the service appends as one atomic batch on the MAIL stream;
- an agent's inbox is a pure function of message states (`inbox`, `fold_inboxes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import ClassVar, Literal, NamedTuple, assert_never

import msgspec
from msgspec.structs import replace

from events.core.bounds import Id, text
from events.core.policy import Writers, writers
from events.core.registry import Event

Performative = Literal["inform", "request"]
Subject = text(500)
Body = text(100_000)


# --- events ---------------------------------------------------------------------------------


class MailEvent(Event, frozen=True, kw_only=True):
    domain: ClassVar[str] = "mail"
    writers: ClassVar[Writers] = writers("tasks")
    written_by: ClassVar[str] = "the tasks service (send a command: cmd.tasks.send_mail|read_mail)"


class MailSent(MailEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "sent"
    from_agent: Id = msgspec.field(name="from")
    to: Id
    performative: Performative = "inform"
    subject: Subject = ""
    body: Body = ""
    in_reply_to: Id | None = None


class MailRead(MailEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "read"
    agent_id: Id


class MailReplied(MailEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "replied"
    agent_id: Id
    reply_id: Id


# --- commands -------------------------------------------------------------------------------


class Send(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    from_agent: Id = msgspec.field(name="from")
    to: Id
    performative: Performative = "inform"
    subject: Subject = ""
    body: Body = ""
    in_reply_to: Id | None = None


class MarkRead(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    agent_id: Id


MailCommand = Send | MarkRead


# --- state ----------------------------------------------------------------------------------


class Message(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    sent: bool = False
    from_agent: str = ""
    to: str = ""
    performative: str = "inform"
    subject: str = ""
    body: str = ""
    in_reply_to: str | None = None
    sent_at: datetime | None = None
    read_at: datetime | None = None
    replied_at: datetime | None = None
    reply_ids: tuple[str, ...] = ()
    seq: int = 0


class MailEmitted(NamedTuple):
    message_id: str
    event: MailEvent


class Inbox(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent has received, oldest first; `unanswered` counts requests without a reply."""

    agent_id: str
    messages: tuple[Message, ...] = ()
    unread: int = 0
    unanswered: int = 0


# --- errors ---------------------------------------------------------------------------------


class MailRuleError(Exception):
    code: ClassVar[str] = "conflict"


class UnknownMessage(MailRuleError):
    code = "not_found"


class AlreadySent(MailRuleError):
    pass


class NotRecipient(MailRuleError):
    pass


# --- decider --------------------------------------------------------------------------------


def initial_state(message_id: str) -> Message:
    return Message(id=message_id)


def decide(
    cmd: MailCommand, state: Message, now: datetime, original: Message | None = None
) -> list[MailEmitted]:
    """`original` is the state of `cmd.in_reply_to` when the command is a reply."""
    match cmd:
        case Send():
            if state.sent:
                raise AlreadySent(f"message {state.id} was already sent")
            sent = MailEmitted(state.id, MailSent(
                from_agent=cmd.from_agent, to=cmd.to, performative=cmd.performative,
                subject=cmd.subject, body=cmd.body, in_reply_to=cmd.in_reply_to,
            ))
            if cmd.in_reply_to is None:
                return [sent]
            if original is None or not original.sent or original.id != cmd.in_reply_to:
                raise UnknownMessage(f"message {cmd.in_reply_to} does not exist")
            if original.to != cmd.from_agent:
                raise NotRecipient(
                    f"message {original.id} was sent to {original.to}, not {cmd.from_agent}"
                )
            replied = MailReplied(agent_id=cmd.from_agent, reply_id=state.id)
            return [sent, MailEmitted(original.id, replied)]
        case MarkRead(agent_id=agent):
            if not state.sent:
                raise UnknownMessage(f"message {state.id} does not exist")
            if agent != state.to:
                raise NotRecipient(f"message {state.id} was sent to {state.to}, not {agent}")
            return [] if state.read_at is not None else [MailEmitted(state.id, MailRead(agent_id=agent))]
        case _:
            assert_never(cmd)


def evolve(state: Message, event: MailEvent, at: datetime, seq: int = 0) -> tuple[Message, str | None]:
    """Fold one event; total: an event that does not fit returns the state and the reason."""
    match event:
        case MailSent():
            if state.sent:
                return state, f"message {state.id} was already sent"
            return replace(
                state, sent=True, from_agent=event.from_agent, to=event.to,
                performative=event.performative, subject=event.subject, body=event.body,
                in_reply_to=event.in_reply_to, sent_at=at, seq=seq,
            ), None
        case _ if not state.sent:
            return state, f"message {state.id} does not exist"
        case MailRead():
            if event.agent_id != state.to:
                return state, f"message {state.id} was sent to {state.to}, not {event.agent_id}"
            if state.read_at is not None:
                return state, f"message {state.id} was already read"
            return replace(state, read_at=at), None
        case MailReplied():
            if event.reply_id in state.reply_ids:
                return state, f"reply {event.reply_id} to {state.id} is already recorded"
            # a reply implies the message was read
            return replace(
                state, replied_at=at, read_at=state.read_at or at,
                reply_ids=(*state.reply_ids, event.reply_id),
            ), None
        case _:
            return state, f"unhandled event {type(event).__name__}"


# --- inboxes --------------------------------------------------------------------------------


def inbox(agent_id: str, messages: Iterable[Message]) -> Inbox:
    """The inbox of `agent_id` over any set of message states (the rest is ignored)."""
    mine = sorted((m for m in messages if m.sent and m.to == agent_id), key=lambda m: m.seq)
    return Inbox(
        agent_id=agent_id,
        messages=tuple(mine),
        unread=sum(m.read_at is None for m in mine),
        unanswered=sum(m.performative == "request" and not m.reply_ids for m in mine),
    )


def fold_messages(events: Iterable[tuple[str, MailEvent, datetime, int]]) -> dict[str, Message]:
    """Every message state from `(message_id, event, at, seq)` in stream order."""
    states: dict[str, Message] = {}
    for message_id, event, at, seq in events:
        current = states.get(message_id) or initial_state(message_id)
        states[message_id], _ = evolve(current, event, at, seq)
    return {k: v for k, v in states.items() if v.sent}


def fold_inboxes(events: Iterable[tuple[str, MailEvent, datetime, int]]) -> dict[str, Inbox]:
    """Each recipient's inbox from the MAIL stream's events, in stream order."""
    messages = fold_messages(events).values()
    return {agent: inbox(agent, messages) for agent in sorted({m.to for m in messages})}


# `cmd.tasks.<verb>` for mail (the tasks service answers both); the message id travels beside
VERBS: dict[str, type] = {"send_mail": Send, "read_mail": MarkRead}
