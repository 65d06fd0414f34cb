"""NATS users and permissions generated from the write policy (events.core.policy).

The server is the truth: a raw `nats pub` is checked by nats-server against these permissions,
whatever the gateway does. Every principal gets an explicit allow list (nothing is allowed that
is not listed), so no one but the admin can reach the stream admin API (`$JS.API.STREAM.CREATE|
UPDATE|DELETE|PURGE|MSG.DELETE`, snapshots, restores, `$JS.API.SERVER.*`) or the projector's admin
subject (`q.<projector>.admin`: swap and snapshot). Anonymous connections are refused: the config
has users and no `no_auth_user`. Replies are private: each user subscribes only under its own
inbox prefix, `_INBOX.<user>` (agentledger's clients connect with it), so no client can read the
JetStream acks, query answers or command results meant for another.

`authorization_block` is what `agentledger up` appends to nats.conf for the embedded server and
what `agentledger policy --nats-config` prints for an operator's own cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import events.catalog  # noqa: F401  (registers every domain's events and their writers)
from events.core.inbox import inbox_prefix
from events.core.policy import ADMIN, AGENT, AGENT_SELF, READER, SERVICES, Principal, Rule
from events.core.policy import publish_subjects as event_subjects
from events.core.registry import rules as event_rules
from services.runtime.credentials import Credential, bcrypt_hash
from services.runtime.lease import BUCKET as LEASE_BUCKET

# JetStream use without administration: publish acks, consumers (ordered ones included), reads
JS_USE = (
    "$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>", "$JS.API.CONSUMER.>", "$JS.ACK.>",
    "$JS.FC.>",
)
SERVICE_SUBSCRIBE: Mapping[str, tuple[str, ...]] = {
    "tasks": ("cmd.tasks.>",),
    "dispatcher": ("kill.*",),  # the watchdog's kill requests for processes the dispatcher runs
}
HTTP_CALLERS = frozenset({ADMIN, AGENT, AGENT_SELF, "gateway"})
LEASED = frozenset({"notifier", "watchdog", "scheduler"})  # they work only while they hold their lease


def permissions(
    principal: Principal, rules: Iterable[Rule] | None = None, projector: str = "projector"
) -> dict[str, dict[str, list[str]]]:
    """Publish and subscribe allow lists of one principal."""
    table = list(event_rules().values() if rules is None else rules)
    kind = principal.kind
    if kind == ADMIN:
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    inbox = inbox_prefix(principal.nats_user) + ".>"  # its own replies, nobody else's
    if kind == AGENT:
        return {
            "publish": {"allow": [
                *event_subjects(principal, table), f"cmd.tasks.*.{principal.id}", f"q.{projector}", inbox,
            ]},
            "subscribe": {"allow": [inbox, f"wake.{principal.id}"]},
        }
    if kind == READER:
        return {"publish": {"allow": [f"q.{projector}", inbox]}, "subscribe": {"allow": [inbox]}}
    if kind not in SERVICES:
        return {"publish": {"deny": [">"]}, "subscribe": {"deny": [">"]}}
    if kind == "gateway":
        # the gateway writes for its HTTP callers, after checking their own principal
        own = sorted({r.pattern for r in table if r.writers & HTTP_CALLERS})
    else:
        own = event_subjects(principal, table)
    if kind in LEASED:  # its own lease keys, no other (services.runtime.lease): `scheduler.<claw>`
        own = [*own, f"$KV.{LEASE_BUCKET}.{kind}", f"$KV.{LEASE_BUCKET}.{kind}.>"]
    subscribe = [inbox, *SERVICE_SUBSCRIBE.get(kind, ())]
    if kind == "projector":
        subscribe += [f"q.{projector}", f"q.{projector}.admin"]
    return {
        # services answer requests: they publish to any inbox (reading one is what is guarded)
        "publish": {"allow": [*own, *JS_USE, "_INBOX.>", "cmd.>", "wake.>", "kill.>", f"q.{projector}"]},
        "subscribe": {"allow": subscribe},
    }


def authorization_block(creds: Iterable[Credential], projector: str = "projector") -> str:
    """The `authorization { users = [...] }` block for nats.conf (password hashes only)."""
    table = list(event_rules().values())
    users = [{
        "user": c.user,
        "password": c.password_hash or bcrypt_hash(c.password),  # files issued before the field
        "permissions": permissions(c.principal, table, projector),
    } for c in creds]
    return "authorization " + json.dumps({"users": users}, indent=2) + "\n"
