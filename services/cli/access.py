"""`agentledger policy` and `agentledger agents add|revoke|list`: who may write what, and an
agent's credentials.

`agents add ID` writes `<home>/credentials/agents/ID.json` (0600: the NATS user and password and
the HTTP token), adds the user to the embedded server's config and asks a running embedded
nats-server to reload it, so the agent can connect at once. The secret is written to that file
only, never printed: the agent reads the file (`EventClient.connect(url, credentials=FILE)`).
Adding an agent that has credentials issues new ones: the old password and token stop working.
`agents revoke ID` deletes the file and reloads the server the same way: the agent's NATS
connections are closed and its token is refused from the gateway's next request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
from typing import Any

from events.core.policy import ADMIN, AGENT, AGENT_SELF, SERVICES, Principal, describe
from events.core.registry import rules
from events.core.subjects import check_id
from services.cli import output as show
from services.runtime import credentials
from services.runtime.nats_auth import authorization_block, permissions
from services.settings import Settings


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    c = sub.add_parser("policy", parents=[common], help="print who may write which event",
                       description="The write policy: every event and who may write it.")
    c.add_argument("--nats-config", action="store_true",
                   help="print the nats-server `authorization` block for the credentials in the "
                        "home instead (for an operator's own NATS server or cluster)")
    c.add_argument("--principal", default=None, metavar="NAME",
                   help="print the NATS permissions of one principal (admin, reader, a service, "
                        "agent:ID)")
    c.set_defaults(run=policy)


def add_agent_verbs(verbs: Any, common: argparse.ArgumentParser) -> None:
    """`agents add|list` (credentials), beside the other `agents` verbs (services.cli.agents)."""
    add = verbs.add_parser("add", parents=[common], help="issue an agent's NATS credentials and "
                           "HTTP token", description=__doc__)
    add.add_argument("agent_id", metavar="ID")
    add.set_defaults(run=add_agent)
    rm = verbs.add_parser("revoke", parents=[common], help="delete an agent's credentials: its NATS "
                          "user and HTTP token stop working at once", description=__doc__)
    rm.add_argument("agent_id", metavar="ID")
    rm.set_defaults(run=revoke_agent)
    ls = verbs.add_parser("list", parents=[common], help="agents that have credentials")
    ls.set_defaults(run=list_agents)


async def policy(args: argparse.Namespace, settings: Settings) -> int:
    import events.catalog  # noqa: F401  (every domain's events and their writers)

    home = settings.home_path
    if args.nats_config:
        creds = [*credentials.ensure(home).values(), *credentials.agents(home)]
        show.line(authorization_block(creds, settings.projector_name).rstrip())
        return 0
    if args.principal:
        kind, _, ident = args.principal.partition(":")
        show.line(json.dumps(permissions(Principal(kind, ident), projector=settings.projector_name), indent=2))
        return 0
    rows = [
        [r.pattern, describe(r.writers), r.note or ""]
        for r in rules().values()
    ]
    show.table(["subject", "written by", "note"], rows)
    show.note(
        f"{AGENT_SELF}: an agent about itself only ({{domain}}.<its id>.*); {AGENT}: any agent; "
        f"{ADMIN}: the operator; services: {', '.join(SERVICES)}. Agents also send commands on "
        "cmd.tasks.<verb>.<own id>; readers only ask q.<projector>."
    )
    return 0


async def add_agent(args: argparse.Namespace, settings: Settings) -> int:
    agent_id = check_id(args.agent_id, "agent_id")
    home = settings.home_path
    cred = credentials.issue(home, f"{AGENT}:{agent_id}")
    path = credentials.path_of(home, f"{AGENT}:{agent_id}")
    reloaded = _reload_embedded(settings)
    show.note(f"agent {agent_id}: credentials in {path} (NATS user {cred.user}; the password and "
              "the HTTP token are in the file, readable by this user only)")
    show.note("embedded nats-server reloaded: the agent can connect now" if reloaded else
              "no embedded nats-server is running: the next `agentledger up` includes the agent; "
              "for your own NATS, regenerate its config with `agentledger policy --nats-config`")
    return 0


async def revoke_agent(args: argparse.Namespace, settings: Settings) -> int:
    agent_id = check_id(args.agent_id, "agent_id")
    if not credentials.revoke(settings.home_path, f"{AGENT}:{agent_id}"):
        show.fail(f"agent {agent_id} has no credentials in {settings.home_path} (see `agentledger agents list`)")
        return 2
    reloaded = _reload_embedded(settings)
    show.note(f"agent {agent_id}: credentials deleted; its HTTP token is refused from now on")
    show.note("embedded nats-server reloaded: the agent's connections are closed" if reloaded else
              "no embedded nats-server is running: the next `agentledger up` leaves the agent out; "
              "for your own NATS, regenerate its config with `agentledger policy --nats-config` "
              "and reload it")
    return 0


async def list_agents(args: argparse.Namespace, settings: Settings) -> int:
    rows = [[c.id, c.user, str(credentials.path_of(settings.home_path, f"{AGENT}:{c.id}"))]
            for c in credentials.agents(settings.home_path)]
    show.table(["agent", "NATS user", "credentials file"], rows)
    return 0


def _reload_embedded(settings: Settings) -> bool:
    """Rewrite the embedded server's config and SIGHUP it (nats-server reloads on HUP)."""
    from services import up

    conf = settings.nats_store / "server.conf"
    if not conf.exists():
        return False
    up.server_config(settings)
    try:
        pid = int((settings.nats_store / up.PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGHUP)
        return True
    return False
