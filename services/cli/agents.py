"""`agentledger agents classes`: the agent classes in force, as the watchdog applies them.

The seed's defaults with the settings' `agent_classes` overrides applied; an agent's own
registration values (`agents.<id>.registered`) override its class for that agent alone.
"""

from __future__ import annotations

import argparse
from typing import Any

from services.cli import access
from services.cli import output as show
from services.settings import Settings


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    a = sub.add_parser("agents", parents=[common], help="agents: credentials, classes and their rules")
    verbs = a.add_subparsers(dest="verb", required=True, metavar="VERB")
    c = verbs.add_parser("classes", parents=[common], help=__doc__.splitlines()[0], description=__doc__)
    c.add_argument("--json", action="store_true", help="print a JSON array of objects")
    c.set_defaults(run=classes)
    access.add_agent_verbs(verbs, common)


async def classes(args: argparse.Namespace, settings: Settings) -> int:
    rows = [rules.as_row(name) for name, rules in settings.classes().items()]
    columns = list(rows[0])
    if args.json:
        show.records_json(columns, [[list(v) if isinstance(v, tuple) else v for v in r.values()] for r in rows])
    else:
        values = [[", ".join(v) if isinstance(v, tuple) else v for v in r.values()] for r in rows]
        show.table(columns, values)
        show.note(f"heartbeat cron time zone {settings.heartbeat_tz}; override per class with "
                  "agent_classes, per agent at registration")
    return 0
