"""`agentledger targets add|list|remove|test NAME`: delivery targets, straight on the stream.

Like `keys rotate`, these act as the operator with the configured keyring: secret fields are
encrypted before they become events and shown masked. A secret given as `-` is read from stdin,
so it stays out of the shell history and the process list.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from events import targets as domain
from events.core.client import EventClient
from events.core.errors import EventError
from services import targets
from services.cli import output as show
from services.notifier import probe
from services.runtime.connection import connect_once
from services.settings import Settings

FIELDS = sorted({f for spec in domain.KINDS.values() for f in (*spec.required, *spec.optional)})


class TargetRefused(EventError):
    """A targets rule refused the command (exists already, unknown, removed)."""


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    t = sub.add_parser("targets", parents=[common], help="manage where reports are delivered")
    verbs = t.add_subparsers(dest="verb", required=True, metavar="VERB")
    c = verbs.add_parser("add", parents=[common], help="add a target")
    c.add_argument("name")
    c.add_argument("--kind", required=True, choices=list(domain.KINDS))
    for f in FIELDS:
        c.add_argument(f"--{f.replace('_', '-')}", dest=f, default=None)
    c.add_argument("--default", action="store_true", help="reports without --target go here")
    c.add_argument("--disabled", action="store_true", help="hold its queue: nothing is sent")
    c.set_defaults(run=add)
    c = verbs.add_parser("list", parents=[common], help="targets, secrets masked")
    c.add_argument("--json", action="store_true")
    c.set_defaults(run=list_targets)
    c = verbs.add_parser("remove", parents=[common], help="remove a target")
    c.add_argument("name")
    c.set_defaults(run=remove)
    c = verbs.add_parser("test", parents=[common], help="send one test message now (nothing recorded)")
    c.add_argument("name")
    c.set_defaults(run=test)


async def _with_client(settings: Settings, act: Any) -> Any:
    nc = await connect_once(settings.url)
    try:
        return await act(EventClient(nc, timeout=settings.request_timeout_s))
    except domain.TargetRuleError as exc:
        raise TargetRefused(str(exc)) from None
    finally:
        await nc.close()


async def add(args: argparse.Namespace, settings: Settings) -> int:
    body: dict[str, Any] = {"kind": args.kind, "default": args.default, "enabled": not args.disabled}
    for f in FIELDS:
        if (value := getattr(args, f)) is not None:
            body[f] = sys.stdin.readline().rstrip("\n") if value == "-" else value
    keyring = settings.load_keyring()
    cmd = targets.created(keyring, args.name, body)
    state = await _with_client(settings, lambda c: targets.execute(c, args.name, lambda _: cmd))
    show.line(json.dumps(targets.view(keyring, state)))
    return 0


async def list_targets(args: argparse.Namespace, settings: Settings) -> int:
    keyring = settings.load_keyring()
    states = await _with_client(settings, lambda c: targets.load(c.js))
    views = [targets.view(keyring, t) for _, (t, _) in sorted(states.items()) if t.live]
    if args.json:
        show.line(json.dumps(views))
    else:
        show.table(["name", "kind", "default", "enabled", "settings"],
                   [[v.pop("name"), v.pop("kind"), v.pop("default"), v.pop("enabled"), v] for v in views])
    return 0


async def remove(args: argparse.Namespace, settings: Settings) -> int:
    await _with_client(settings, lambda c: targets.execute(c, args.name, lambda _: domain.Remove(reason="operator")))
    show.line(f"removed {args.name}")
    return 0


async def test(args: argparse.Namespace, settings: Settings) -> int:
    states = await _with_client(settings, lambda c: targets.load(c.js, args.name))
    state = states.get(args.name, (domain.initial_state(args.name), 0))[0]
    if not state.live:
        raise TargetRefused(f"target {args.name} does not exist")
    outcome = await probe.send_test(settings.load_keyring(), state, settings.report_timeout_s)
    if outcome.ok:
        show.line(f"{args.name}: delivered" + (f" (message id {outcome.message_id})" if outcome.message_id else ""))
        return 0
    show.fail(f"{args.name}: not delivered: {outcome.error}")
    return 1
