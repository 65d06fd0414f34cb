"""`agentledger runs list|show|tail`: run logs from the `runs` projection, or live from RUNS.

`list` and `show` ask the projector; `tail` follows the RUNS stream itself (an ordered consumer
from the newest message on), printing one line per event, so it shows a run while it happens
even when the projector lags. `--task` and `--agent` filter every form.
"""

from __future__ import annotations

import argparse
from typing import Any

from nats.js.api import DeliverPolicy

from events.core import codec
from events.core.errors import EventError
from events.core.subjects import domain_filter
from events.runs import RunFinished, RunFollowing, RunStarted
from services.cli import output as show
from services.cli.read import print_rows, queries
from services.runtime.connection import connect_once
from services.settings import Settings

_LIST_COLUMNS = ["run_id", "agent_id", "task_id", "log_type", "status", "lines", "duration_ms",
                 "level", "started_at", "last_at"]


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    r = sub.add_parser("runs", parents=[common], help="run logs: list, show, tail")
    verbs = r.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, fn, help in (
        ("list", list_runs, "runs, newest first"),
        ("tail", tail, "follow run events as they are written (Ctrl-C stops)"),
    ):
        c = verbs.add_parser(name, parents=[common], help=help, description=help)
        c.add_argument("--task")
        c.add_argument("--agent")
        c.set_defaults(run=fn)
        if name == "list":
            c.add_argument("--status")
            c.add_argument("--limit", type=int, default=100)
            c.add_argument("--json", action="store_true")
        else:
            c.add_argument("--count", type=int, default=None, help="stop after N events")
    c = verbs.add_parser("show", parents=[common], help="one run with its log text")
    c.add_argument("id")
    c.add_argument("--json", action="store_true")
    c.set_defaults(run=show_run)


async def list_runs(args: argparse.Namespace, settings: Settings) -> int:
    async with queries(settings) as q:
        rows = await q.query("runs", "list", task=args.task, agent=args.agent, status=args.status,
                             limit=args.limit)
    keep = [rows.columns.index(c) for c in _LIST_COLUMNS]
    print_rows(args, _LIST_COLUMNS, [[r[i] for i in keep] for r in rows.rows])
    return 0


async def show_run(args: argparse.Namespace, settings: Settings) -> int:
    async with queries(settings) as q:
        rows = await q.query("runs", "get", id=args.id)
    if not rows.rows:
        show.fail(f"run {args.id} is not known")
        return 1
    if args.json:
        show.records_json(rows.columns, rows.rows)
        return 0
    record = dict(zip(rows.columns, rows.rows[0], strict=True))
    content = record.pop("content")
    show.table(["field", "value"], list(record.items()))
    show.line(content)
    return 0


async def tail(args: argparse.Namespace, settings: Settings) -> int:
    nc = await connect_once(settings.url)
    owners: dict[str, tuple[str, str | None]] = {}  # run -> (agent, task), from `started`
    printed = 0
    try:
        sub = await nc.jetstream().subscribe(
            domain_filter("runs"), ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )
        async for msg in sub.messages:
            try:
                event = codec.decode(msg.subject, msg.data)
            except EventError:
                continue
            run_id = msg.subject.split(".")[1]
            if isinstance(event, RunStarted):
                owners[run_id] = (event.agent_id, event.task_id)
            agent, task = owners.get(run_id, (None, None))
            if (args.agent and agent != args.agent) or (args.task and task != args.task):
                continue
            show.line(f"{run_id} {agent or '?'} {task or '-'} {_describe(event)}")
            printed += 1
            if args.count is not None and printed >= args.count:
                break
    finally:
        await nc.close()
    return 0


def _describe(event: object) -> str:
    match event:
        case RunStarted():
            return f"started {event.log_type}"
        case RunFollowing():
            return f"| {event.line}"
        case RunFinished():
            return f"finished {event.status} in {event.duration_ms} ms ({event.level}) {event.message}"
    return type(event).__name__
