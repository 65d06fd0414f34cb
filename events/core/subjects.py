"""The subject grammar `<domain>.<aggregate_id>.<event>`, built and parsed only here.

Aggregate ids are restricted to `[A-Za-z0-9_-]{1,128}` because a dot, a space or a wildcard
inside an id would silently change which stream and which consumers see the message.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from events.core.errors import ValidationError

DOMAINS: tuple[str, ...] = (
    "tasks", "agents", "providers", "usage", "reports", "calendar", "runs", "mail", "targets", "alerts",
    "watchdog",
)

_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_EVENT = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Subject(NamedTuple):
    domain: str
    aggregate_id: str
    event: str

    def __str__(self) -> str:
        return f"{self.domain}.{self.aggregate_id}.{self.event}"


def check_id(value: str, field: str = "aggregate_id") -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValidationError(
            f"invalid {field} {value!r}: ids match [A-Za-z0-9_-]{{1,128}}", field=f"$.{field}"
        )
    return value


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise ValidationError(
            f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}", field="$.subject"
        )
    return domain


@lru_cache(maxsize=16384)  # fleets reuse a few ids: checked once, not per event
def build(domain: str, aggregate_id: str, event: str) -> str:
    check_domain(domain)
    check_id(aggregate_id)
    if not _EVENT.fullmatch(event):
        raise ValidationError(f"invalid event name {event!r}: snake_case expected", field="$.subject")
    return f"{domain}.{aggregate_id}.{event}"


def parse(subject: str) -> Subject:
    """Split an event subject, refusing anything that is not exactly three valid tokens."""
    parts = subject.split(".") if isinstance(subject, str) else []
    if len(parts) != 3:
        raise ValidationError(
            f"invalid subject {subject!r}: expected <domain>.<aggregate_id>.<event>", field="$.subject"
        )
    domain, aggregate_id, event = parts
    check_domain(domain)
    if not _ID.fullmatch(aggregate_id):
        raise ValidationError(
            f"invalid aggregate id {aggregate_id!r} in subject {subject!r}: ids match "
            "[A-Za-z0-9_-]{1,128}",
            field="$.subject",
        )
    if not _EVENT.fullmatch(event):
        raise ValidationError(f"invalid event name {event!r} in subject {subject!r}", field="$.subject")
    return Subject(domain, aggregate_id, event)


def aggregate_filter(domain: str, aggregate_id: str) -> str:
    """Every event of one aggregate: the `-Subject` of optimistic appends."""
    return f"{check_domain(domain)}.{check_id(aggregate_id)}.*"


def domain_filter(domain: str) -> str:
    return f"{check_domain(domain)}.>"


def event_filter(domain: str, event: str) -> str:
    """One event type across all aggregates of a domain, e.g. `agents.*.heartbeat`."""
    return f"{check_domain(domain)}.*.{event}"


def command(domain: str, verb: str) -> str:
    return f"cmd.{domain}.{verb}"


def query(service: str) -> str:
    """Request/reply subject where a projector service answers queries."""
    return f"q.{check_id(service, 'service')}"
