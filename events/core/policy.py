"""Who may write which event: one table, read by the NATS config generator and the gateway.

Every event type declares its writers next to its fields (`writers: ClassVar[Writers]`, usually
once on the domain's base class), so a new event cannot exist without a rule. A writer is:

- `admin`: an operator (the CLI with the admin credentials, the gateway's admin API);
- a service name (`gateway`, `projector`, `tasks`, `dispatcher`, `watchdog`, `notifier`,
  `scheduler`): the one process that decides that state;
- `agent:self`: an agent, about itself only (the subject's aggregate id is its own id);
- `agent`: any agent, on aggregates that are not agents (a report it files);
- `client`: a gateway client (proxy key) — it writes nothing directly; the gateway writes for it.

Readers (`reader`) write nothing. `gateway` as a writer means the gateway decides that event
itself (usage, cooldowns, backends through the admin API); what HTTP callers may write through
`POST /api/events` is checked against the caller's own principal, never the gateway's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from events.core.errors import Forbidden

ADMIN = "admin"
AGENT_SELF = "agent:self"
AGENT = "agent"
CLIENT = "client"
READER = "reader"
SERVICES: tuple[str, ...] = (
    "gateway", "projector", "tasks", "dispatcher", "watchdog", "notifier", "scheduler",
)
KINDS = frozenset({ADMIN, AGENT_SELF, AGENT, CLIENT, READER, *SERVICES})

Writers = frozenset[str]
__all__ = ["Forbidden"]  # re-exported: refusals of this module are events.core.errors.Forbidden


def writers(*names: str) -> Writers:
    unknown = set(names) - KINDS
    if unknown:
        raise TypeError(f"unknown writer(s) {sorted(unknown)}; known: {sorted(KINDS)}")
    return frozenset(names)


class Principal(NamedTuple):
    """Who is asking: a kind (`admin`, `agent`, `reader`, `client` or a service name) and, for
    an agent, its id."""

    kind: str
    id: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}" if self.id else self.kind

    @property
    def nats_user(self) -> str:
        """The NATS user this principal connects as: `agent-<id>` or the kind."""
        return f"agent-{self.id}" if self.kind == AGENT else self.kind


class Rule(NamedTuple):
    domain: str
    event: str
    writers: Writers
    note: str = ""

    @property
    def pattern(self) -> str:
        return f"{self.domain}.*.{self.event}"

    def describe(self) -> str:
        if self.note:
            return f"{self.pattern} is written only by {self.note}"
        return f"{self.pattern} is written only by {describe(self.writers)}"


def describe(names: Iterable[str]) -> str:
    words = {AGENT_SELF: "the agent itself", AGENT: "agents", ADMIN: "the admin"}
    parts = sorted(words.get(n, f"the {n} service") for n in names)
    return ", ".join(parts[:-1]) + (" or " if len(parts) > 1 else "") + parts[-1] if parts else "nobody"


def may_write(principal: Principal, domain: str, aggregate_id: str, rule: Rule) -> bool:
    if principal.kind in rule.writers and principal.kind not in (AGENT, AGENT_SELF):
        return True
    if principal.kind == AGENT:
        if AGENT in rule.writers:
            return True
        return AGENT_SELF in rule.writers and aggregate_id == principal.id
    return False


def check(
    principal: Principal, domain: str, aggregate_id: str, event: str,
    rules: Mapping[tuple[str, str], Rule],
) -> Rule:
    """The rule that lets `principal` write `<domain>.<aggregate_id>.<event>`, or Forbidden."""
    rule = rules.get((domain, event))
    if rule is None:
        raise Forbidden(f"{domain}.*.{event} is not an event anyone may write")
    if may_write(principal, domain, aggregate_id, rule):
        return rule
    if principal.kind == AGENT and AGENT_SELF in rule.writers:
        raise Forbidden(
            f"{rule.describe()}: agent {principal.id} may write only {domain}.{principal.id}.{event}",
            rule,
        )
    raise Forbidden(f"{rule.describe()}; {principal} may not write it", rule)


def publish_subjects(principal: Principal, rules: Iterable[Rule]) -> list[str]:
    """The event subjects a principal may publish, as NATS subject patterns."""
    out: set[str] = set()
    for r in rules:
        if principal.kind == AGENT:
            if AGENT in r.writers:
                out.add(f"{r.domain}.*.{r.event}")
            elif AGENT_SELF in r.writers:
                out.add(f"{r.domain}.{principal.id}.{r.event}")
        elif principal.kind in r.writers:
            out.add(f"{r.domain}.*.{r.event}")
    return sorted(out)
