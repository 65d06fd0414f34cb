"""`agentledger calendar day [--date] [--agent]`: a day's slots, each with its wake outcome,
from the projector's `calendar` read model."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from events.calendar import today
from events.core.errors import ValidationError
from events.core.subjects import check_id
from services.cli import output as show
from services.cli.read import queries
from services.settings import Settings

COLUMNS = ["agent_id", "slot_id", "scheduled_at", "status", "priority", "source", "outcome", "reason", "due_at"]


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    c = sub.add_parser("calendar", parents=[common], help="the calendar: a day's slots and their wakes")
    verbs = c.add_subparsers(dest="verb", required=True, metavar="VERB")
    d = verbs.add_parser("day", parents=[common], help="a day's slots with each slot's wake outcome")
    d.add_argument("--date", default=None, help="YYYY-MM-DD (default: today in calendar_timezone)")
    d.add_argument("--agent", default=None, help="only this agent")
    d.add_argument("--json", action="store_true")
    d.set_defaults(run=day)


async def day(args: argparse.Namespace, settings: Settings) -> int:
    date = args.date or today(datetime.now(UTC), ZoneInfo(settings.calendar_timezone))
    try:
        datetime.strptime(date, "%Y-%m-%d")
    except ValueError:
        raise ValidationError(f"--date {date!r} is not YYYY-MM-DD", field="--date") from None
    if args.agent is not None:
        check_id(args.agent, "agent")
    async with queries(settings) as q:
        rows = (await q.query("calendar", "day", date=date, agent=args.agent)).records()
    table = [[r.get(c) for c in COLUMNS] for r in rows]
    if args.json:
        show.records_json(COLUMNS, table)
    else:
        show.line(f"calendar {date}" + (f", agent {args.agent}" if args.agent else ""))
        show.table(COLUMNS, table)
        show.note(f"{len(rows)} slot{'s' if len(rows) != 1 else ''}")
    return 0
