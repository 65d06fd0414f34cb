"""Message metadata: what JetStream says about a stored event, never part of the payload."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec


class Meta(msgspec.Struct, frozen=True, kw_only=True):
    """`at` is the JetStream timestamp: the authoritative time for every time rule."""

    seq: int
    subject: str
    at: datetime
    stream: str = ""
    headers: dict[str, str] | None = None


class Delivery(msgspec.Struct, frozen=True):
    stream: str
    seq: int
    at_ns: int
    pending: int


def parse_ack_subject(reply: str) -> Delivery:
    """Read stream, sequence, timestamp and pending count from a JetStream `$JS.ACK...` subject.

    Both the v1 (9 tokens) and the v2 form with domain and account hash (12 tokens) exist; this is
    on the projector's hot path, so it is a split, not a regex.
    """
    t = reply.split(".")
    if len(t) == 9:
        o = 2
    elif len(t) >= 11:
        o = 4
    else:
        raise ValueError(f"not a JetStream ack subject: {reply!r}")
    return Delivery(t[o], int(t[o + 3]), int(t[o + 5]), int(t[o + 6]))


def at_from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)
