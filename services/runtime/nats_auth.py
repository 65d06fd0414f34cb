"""NATS users and permissions generated from the write policy (events.core.policy).

The server is the truth: a raw `nats pub` is checked by nats-server against these permissions,
whatever the gateway does. Every principal gets an explicit allow list (nothing is allowed that
is not listed), so no one but the admin can reach the stream admin API (`$JS.API.STREAM.CREATE|
UPDATE|DELETE|PURGE|MSG.DELETE`, snapshots, restores, `$JS.API.SERVER.*`) or the projector's admin
subject (`q.<projector>.admin`: swap and snapshot). Anonymous connections are refused: the config
has users and no `no_auth_user`.

`authorization_block` is what `agentledger up` appends to nats.conf for the embedded server and
what `agentledger policy --nats-config` prints for an operator's own cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import bcrypt

import events.catalog  # noqa: F401  (registers every domain's events and their writers)
from events.core.policy import ADMIN, AGENT, AGENT_SELF, READER, SERVICES, Principal, Rule
from events.core.policy import publish_subjects as event_subjects
from events.core.registry import rules as event_rules
from services.runtime.credentials import Credential

BCRYPT_COST = 11  # what nats-server's own `nats server passwd` uses
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


def permissions(
    principal: Principal, rules: Iterable[Rule] | None = None, projector: str = "projector"
) -> dict[str, dict[str, list[str]]]:
    """Publish and subscribe allow lists of one principal."""
    table = list(event_rules().values() if rules is None else rules)
    kind = principal.kind
    if kind == ADMIN:
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    if kind == AGENT:
        return {
            "publish": {"allow": [
                *event_subjects(principal, table), f"cmd.tasks.*.{principal.id}", f"q.{projector}",
            ]},
            "subscribe": {"allow": ["_INBOX.>", f"wake.{principal.id}"]},
        }
    if kind == READER:
        return {"publish": {"allow": [f"q.{projector}"]}, "subscribe": {"allow": ["_INBOX.>"]}}
    if kind not in SERVICES:
        return {"publish": {"deny": [">"]}, "subscribe": {"deny": [">"]}}
    if kind == "gateway":
        # the gateway writes for its HTTP callers, after checking their own principal
        own = sorted({r.pattern for r in table if r.writers & HTTP_CALLERS})
    else:
        own = event_subjects(principal, table)
    subscribe = ["_INBOX.>", *SERVICE_SUBSCRIBE.get(kind, ())]
    if kind == "projector":
        subscribe += [f"q.{projector}", f"q.{projector}.admin"]
    return {
        "publish": {"allow": [*own, *JS_USE, "_INBOX.>", "cmd.>", "wake.>", "kill.>", f"q.{projector}"]},
        "subscribe": {"allow": subscribe},
    }


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def authorization_block(
    creds: Iterable[Credential], projector: str = "projector",
    known_hashes: Mapping[str, str] | None = None,
) -> str:
    """The `authorization { users = [...] }` block for nats.conf.

    `known_hashes` (user -> "password hash") lets a regeneration keep the hashes it made before,
    since bcrypt is slow on purpose and a config reload should not wait seconds per agent.
    """
    table = list(event_rules().values())
    users = []
    for c in creds:
        known = (known_hashes or {}).get(c.user)
        users.append({
            "user": c.user,
            "password": known if known and bcrypt.checkpw(c.password.encode(), known.encode())
            else hashed(c.password),
            "permissions": permissions(c.principal, table, projector),
        })
    return "authorization " + json.dumps({"users": users}, indent=2) + "\n"


def read_hashes(text: str) -> dict[str, str]:
    """user -> bcrypt hash from a block this module wrote (empty when it cannot tell)."""
    start = text.find("authorization {")
    if start < 0:
        return {}
    try:
        data = json.loads(text[start + len("authorization "):])
    except ValueError:
        return {}
    return {u["user"]: u["password"] for u in data.get("users", []) if "user" in u}
