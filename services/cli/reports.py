"""`agentledger report file ...` and `agentledger reports drain|list|show|retry|abandon`.

Filing uses the SDK's `ReportClient` (the seed producer's flags; `--body -` reads stdin; no
`--target`: the targets marked default); `--dry-run` prints the message and its targets and writes
nothing. `reports drain` is the seed's watchdog, one pass by hand: per target its oldest pending
reports (`--max-count`, default 1, or `--all`), stopping that target at its first failure; stop
the notifier service first, or both may send the same head. Reads come from the `reports`
projection.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from events.core.client import EventClient
from events.core.errors import EventError
from events.reports import ReportRuleError
from events.reports.client import ReportClient
from services.cli import output as show
from services.cli.read import queries
from services.runtime.connection import connect_once
from services.settings import Settings

FIELDS = ("team", "worker", "task_id", "progress", "done", "next", "status", "source", "title")
PROJECTION = "reports"


class Refused(EventError):
    """A report rule refused the operator's command (already delivered, unknown target)."""


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    r = sub.add_parser("report", parents=[common], help="file an owner report")
    verbs = r.add_subparsers(dest="verb", required=True, metavar="VERB")
    c = verbs.add_parser("file", parents=[common], help="file a report (to the default targets unless --target)")
    for f in FIELDS:
        c.add_argument(f"--{f.replace('_', '-')}", dest=f, default=None)
    c.add_argument("--body", default=None, help="free text; - reads it from stdin")
    c.add_argument("--target", action="append", dest="targets", metavar="NAME", help="repeatable")
    c.add_argument("--id", dest="report_id", default=None, help="report id (default: a new time-sortable one)")
    c.add_argument("--dry-run", action="store_true", help="print the message and its targets; write nothing")
    c.add_argument("--json", action="store_true")
    c.set_defaults(run=file_report)

    r = sub.add_parser("reports", parents=[common], help="deliver, list and inspect reports")
    verbs = r.add_subparsers(dest="verb", required=True, metavar="VERB")
    c = verbs.add_parser("drain", parents=[common], help="one delivery pass by hand, oldest first per target")
    how_many = c.add_mutually_exclusive_group()
    how_many.add_argument("--max-count", type=int, default=1, help="reports per target (default 1)")
    how_many.add_argument("--all", action="store_true", help="every pending report")
    c.add_argument("--target", default=None, metavar="NAME")
    c.add_argument("--dry-run", action="store_true", help="show what would be sent; send and write nothing")
    c.add_argument("--json", action="store_true")
    c.set_defaults(run=drain)
    c = verbs.add_parser("list", parents=[common], help="reports, newest first")
    c.add_argument("--status", choices=["pending", "delivered", "abandoned"])
    c.add_argument("--target")
    c.add_argument("--limit", type=int, default=100)
    c.add_argument("--json", action="store_true")
    c.set_defaults(run=list_reports)
    c = verbs.add_parser("show", parents=[common], help="one report, its deliveries and every attempt")
    c.add_argument("id")
    c.add_argument("--json", action="store_true")
    c.set_defaults(run=show_report)
    for verb, fn, text in (("retry", retry, "try again now (reopens an abandoned delivery)"),
                           ("abandon", abandon, "stop delivering it")):
        c = verbs.add_parser(verb, parents=[common], help=text)
        c.add_argument("id")
        c.add_argument("--target", default=None, metavar="NAME", help="one target (default: every open one)")
        if verb == "abandon":
            c.add_argument("--reason", default="abandoned by an operator")
        c.set_defaults(run=fn)


async def _client(settings: Settings) -> EventClient:
    return EventClient(await connect_once(settings.url), timeout=settings.request_timeout_s)


async def file_report(args: argparse.Namespace, settings: Settings) -> int:
    fields = {f: v for f in FIELDS if (v := getattr(args, f)) is not None}
    if args.body is not None:
        fields["body"] = sys.stdin.read() if args.body == "-" else args.body
    client = await _client(settings)
    try:
        filed = await ReportClient(client).file(args.report_id, targets=args.targets, dry_run=args.dry_run, **fields)
    except ReportRuleError as exc:
        raise Refused(str(exc)) from None
    finally:
        await client.close()
    if args.json:
        show.line(json.dumps(filed.__dict__))
    elif filed.dry_run:
        show.line(f"dry run: report {filed.report_id} would go to {', '.join(filed.targets)}; nothing written")
        show.line(filed.text)
    else:
        show.line(f"{'already filed' if filed.duplicate else 'filed'} {filed.report_id} -> "
                  f"{', '.join(filed.targets)}" + (f" (seq {filed.seq})" if filed.seq else ""))
    return 0


async def drain(args: argparse.Namespace, settings: Settings) -> int:
    from services.notifier import Notifier

    nc = await connect_once(settings.url)
    try:
        notifier = Notifier(nc, keyring=settings.load_keyring(), policy=settings.report_policy(),
                            timeout_s=settings.report_timeout_s)
        done = await notifier.drain(only=args.target, max_count=None if args.all else args.max_count,
                                    dry_run=args.dry_run)
    finally:
        await nc.close()
    if args.json:
        show.line(json.dumps(done))
    else:
        show.table(["report_id", "target", "outcome", "title"], [[d["report_id"], d["target"], d["outcome"],
                                                                  d["title"]] for d in done])
        for d in done:
            if d.get("error"):
                show.note(f"{d['report_id']} -> {d['target']}: {d['error']}")
    failed = [d for d in done if d["outcome"] not in ("delivered", "dry_run")]
    return 1 if failed else 0


async def list_reports(args: argparse.Namespace, settings: Settings) -> int:
    async with queries(settings) as q:
        rows = await q.query(PROJECTION, "list", status=args.status, target=args.target, limit=args.limit)
    cols = ["id", "state", "targets", "team", "worker", "task_id", "progress", "status", "title", "filed_at"]
    records = rows.records()
    if args.json:
        show.line(json.dumps(records, default=str))
    else:
        show.table(cols, [[r[c] for c in cols] for r in records])
    return 0


async def show_report(args: argparse.Namespace, settings: Settings) -> int:
    async with queries(settings) as q:
        report = (await q.query(PROJECTION, "get", id=args.id)).records()
        deliveries = (await q.query(PROJECTION, "deliveries", id=args.id)).records()
        attempts = (await q.query(PROJECTION, "attempts", id=args.id)).records()
    if not report:
        raise Refused(f"report {args.id} does not exist (or is not projected yet)")
    if args.json:
        show.line(json.dumps({"report": report[0], "deliveries": deliveries, "attempts": attempts}, default=str))
        return 0
    show.table(["field", "value"], [[k, v] for k, v in report[0].items() if v not in (None, "")])
    cols = ["target", "status", "attempts", "retry_at", "status_code", "message_id", "last_error", "reason"]
    show.table(cols, [[d[c] for c in cols] for d in deliveries], title="deliveries")
    cols = ["at", "target", "attempt", "outcome", "status_code", "error", "retry_at"]
    show.table(cols, [[a[c] for c in cols] for a in attempts], title="attempts")
    return 0


async def _operator(settings: Settings, act: Any) -> list[int]:
    client = await _client(settings)
    try:
        return await act(ReportClient(client))  # type: ignore[no-any-return]
    except ReportRuleError as exc:
        raise Refused(str(exc)) from None
    finally:
        await client.close()


async def retry(args: argparse.Namespace, settings: Settings) -> int:
    seqs = await _operator(settings, lambda rc: rc.retry(args.id, target=args.target))
    show.line(f"retry requested for {args.id}" if seqs else f"nothing to retry for {args.id}")
    return 0


async def abandon(args: argparse.Namespace, settings: Settings) -> int:
    seqs = await _operator(settings, lambda rc: rc.abandon(args.id, reason=args.reason, target=args.target))
    show.line(f"abandoned {args.id}" if seqs else f"nothing open to abandon for {args.id}")
    return 0
