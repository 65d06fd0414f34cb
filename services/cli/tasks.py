"""`agentledger tasks ...` and `agentledger mail ...`: commands to the tasks service, reads from
the projector's `tasks` projection, as rich tables (or `--json`).

Every command verb of `events.tasks.VERBS` is a subcommand whose options are the command's own
fields (`--agent` for `agent_id`, lists repeat, structured fields take JSON), so the CLI never
falls behind the domain. The service decides; a refusal exits 1 (2 for invalid input) with its
reason on one line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import msgspec.inspect as mi
import nats.errors

from events import mail, tasks
from events.core.errors import EventError, ValidationError
from events.core.streams import position_text
from events.core.subjects import command
from services.cli import output as show
from services.cli.read import AFTER_HELP, after_option
from services.runtime.connection import connect_once
from services.settings import Settings

PROJECTION = "tasks"
_RENAMES = {"agent_id": "agent", "from_agent": "from"}
_TASK_COLUMNS = ["id", "status", "type", "priority", "level", "title", "claimed_by", "assignee",
                 "project", "parent_id", "depends_on", "updated_at"]


class CommandRefused(EventError):
    """The tasks service refused the command (conflict, not found, unavailable)."""


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """`tasks` and `mail` with their subcommands, on the CLI's subparsers."""
    t = sub.add_parser("tasks", parents=[common], help="create, claim, list and inspect tasks")
    verbs = t.add_subparsers(dest="verb", required=True, metavar="VERB")
    c = _reader(verbs, common, "list", list_tasks, "tasks, optionally by status, agent and project")
    c.add_argument("--status")
    c.add_argument("--agent")
    c.add_argument("--project")
    c = _reader(verbs, common, "actionable", actionable, "actionable tasks, best first")
    c.add_argument("--agent")
    c.add_argument("--limit", type=int)
    _reader(verbs, common, "show", show_task, "one task with its history").add_argument("id")
    _reader(verbs, common, "tree", tree, "a task and all its subtasks").add_argument("id")
    for verb, cls in tasks.VERBS.items():
        c = _commander(verbs, common, verb, cls, f"send cmd.tasks.{verb}")
        c.add_argument("id", nargs="?" if verb == "create" else None,
                       help="task id" + (" (default: a new one)" if verb == "create" else ""))
        c.set_defaults(cmd_verb=verb, id_field="task_id")

    m = sub.add_parser("mail", parents=[common], help="send, read and list mail between agents")
    verbs = m.add_subparsers(dest="verb", required=True, metavar="VERB")
    _reader(verbs, common, "inbox", inbox, "an agent's inbox, oldest first").add_argument("agent")
    c = _commander(verbs, common, "send", mail.Send, "send a message (cmd.tasks.send_mail)")
    c.add_argument("--id", dest="id", help="message id (default: a new one)")
    c.set_defaults(cmd_verb="send_mail", id_field="message_id")
    c = _commander(verbs, common, "read", mail.MarkRead, "mark a message read (cmd.tasks.read_mail)")
    c.add_argument("id", help="message id")
    c.set_defaults(cmd_verb="read_mail", id_field="message_id")


def _reader(verbs: Any, common: argparse.ArgumentParser, name: str, fn: Any, help: str) -> argparse.ArgumentParser:
    c = verbs.add_parser(name, parents=[common], help=help, description=help)
    c.add_argument("--json", action="store_true", help="print JSON")
    c.add_argument("--after", metavar="POSITION", help=AFTER_HELP)
    c.set_defaults(run=fn)
    return c


def _commander(verbs: Any, common: argparse.ArgumentParser, name: str, cls: type, help: str) -> argparse.ArgumentParser:
    c = _reader(verbs, common, name, send, help)
    c.add_argument("--data", type=_json_object, default={}, metavar="JSON", help="more fields as a JSON object")
    fields: dict[str, str] = {}
    for f in mi.type_info(cls).fields:  # type: ignore[attr-defined]
        kind = f.type
        if isinstance(kind, mi.UnionType):
            kind = next(t for t in kind.types if not isinstance(t, mi.NoneType))
        flag = "--" + _RENAMES.get(f.name, f.name).replace("_", "-")
        dest, metavar = f"field_{f.name}", flag[2:].upper().replace("-", "_")
        fields[dest] = f.encode_name
        if isinstance(kind, mi.IntType):
            c.add_argument(flag, dest=dest, metavar=metavar, type=int)
        elif isinstance(kind, mi.ListType) and isinstance(kind.item_type, mi.StrType):
            c.add_argument(flag, dest=dest, metavar=metavar, action="append", help="repeatable")
        elif isinstance(kind, (mi.StrType, mi.LiteralType, mi.DateTimeType)):
            choices = list(kind.values) if isinstance(kind, mi.LiteralType) else None
            c.add_argument(flag, dest=dest, metavar=None if choices else metavar, choices=choices)
        else:
            c.add_argument(flag, dest=dest, type=json.loads, metavar="JSON")
    c.set_defaults(fields=fields)
    return c


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


@asynccontextmanager
async def _nats(settings: Settings) -> AsyncIterator[Any]:
    nc = await connect_once(settings.url_as(settings.identity))
    try:
        yield nc
    finally:
        await nc.close()


async def send(args: argparse.Namespace, settings: Settings) -> int:
    body = {name: v for dest, name in args.fields.items() if (v := getattr(args, dest)) is not None}
    body.update(args.data)
    if args.id is not None:
        body[args.id_field] = args.id
    subject = command("tasks", args.cmd_verb)
    async with _nats(settings) as nc:
        try:
            msg = await nc.request(subject, msgspec.json.encode(body), timeout=settings.request_timeout_s)
        except nats.errors.NoRespondersError:
            raise CommandRefused(f"no tasks service answers on {subject}") from None
        except nats.errors.TimeoutError:
            raise CommandRefused(f"no answer on {subject} in {settings.request_timeout_s:g}s; "
                                 "the command may or may not have been applied") from None
    reply = msgspec.json.decode(msg.data)
    if not reply.get("ok"):
        err = reply.get("error") or {}
        if err.get("code") == "invalid":
            raise ValidationError(err.get("message", "invalid"), field=err.get("field"))
        raise CommandRefused(f"{err.get('code')}: {err.get('message')}")
    position = tasks.written_position(args.cmd_verb, reply)
    reply["after"] = position_text(position)
    await _applied(settings, position)
    if args.json:
        show.line(json.dumps(reply, ensure_ascii=False, default=str))
        return 0
    state = reply.get("task") or reply.get("message") or {}
    events = ", ".join(e["event"] for e in reply["events"]) or "nothing to do"
    status = f" is {state['status']}" if "status" in state else ""
    show.line(f"{state.get('id', args.id)}{status} ({events}; seq {reply['seq']}, after {reply['after']})")
    return 0


async def _applied(settings: Settings, position: dict[str, int]) -> None:
    """Wait (bounded) until the projector has the write, so the next command reads it; the write
    is done either way, so a projector that is down or behind is a note, not a failure."""
    from projections.runtime.protocol import QueryClient, QueryError

    if not position:
        return
    async with _nats(settings) as nc:
        try:
            await QueryClient(nc, settings.projector_name, settings.query_timeout_s + 1.0).wait(PROJECTION, position)
        except QueryError as exc:
            show.note(f"written, but not yet readable: {exc.message}")


async def _query(settings: Settings, name: str, after: str | None, **params: Any) -> Any:
    from projections.runtime.protocol import QueryClient

    async with _nats(settings) as nc:
        return await QueryClient(nc, settings.projector_name, settings.query_timeout_s + 1.0).query(
            PROJECTION, name, after_option(after), **params)


def _print(args: argparse.Namespace, rows: Any, columns: list[str] | None = None) -> None:
    if args.json:
        show.records_json(rows.columns, rows.rows)
        return
    records = rows.records()
    cols = [c for c in (columns or rows.columns) if c in rows.columns]
    show.table(cols, [[r[c] for c in cols] for r in records])
    show.note(f"{len(records)} row{'s' if len(records) != 1 else ''}")


async def list_tasks(args: argparse.Namespace, settings: Settings) -> int:
    rows = await _query(settings, "list", args.after, status=args.status, agent=args.agent, project=args.project)
    _print(args, rows, _TASK_COLUMNS)
    return 0


async def actionable(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit is not None and args.limit < 1:
        raise ValidationError("limit must be at least 1", field="--limit")
    rows = await _query(settings, "actionable", args.after, agent=args.agent, limit=args.limit)
    _print(args, rows, _TASK_COLUMNS)
    return 0


async def show_task(args: argparse.Namespace, settings: Settings) -> int:
    task = await _query(settings, "get", args.after, id=args.id)
    if not task.rows:
        raise CommandRefused(f"task {args.id} is not known: no created event seen")
    history = await _query(settings, "history", args.after, id=args.id)
    if args.json:
        show.line(json.dumps({"task": task.records()[0], "history": history.records()}, default=str))
        return 0
    show.table(["field", "value"], list(task.records()[0].items()), title=f"task {args.id}")
    _print(args, history)
    return 0


async def tree(args: argparse.Namespace, settings: Settings) -> int:
    rows = await _query(settings, "tree", args.after, id=args.id)
    if not rows.rows:
        raise CommandRefused(f"task {args.id} is not known: no created event seen")
    _print(args, rows, ["depth", "id", "status", "type", "priority", "title", "claimed_by"])
    return 0


async def inbox(args: argparse.Namespace, settings: Settings) -> int:
    rows = await _query(settings, "inbox", args.after, agent=args.agent)
    _print(args, rows, ["id", "from_agent", "performative", "subject", "read", "replied", "sent_at"])
    return 0
