"""`agentledger`: run the services, publish events, query read models, rebuild and replay.

Exit codes: 0 success (also after Ctrl-C/SIGTERM stopped `up` or `serve`), 1 the work failed
(NATS unreachable, projector not answering, a service crashed), 2 the input was wrong (usage,
settings, JSON, a payload that breaks the schema), 130 interrupted.
Expected errors print one line on stderr, `agentledger: <reason>`; only bugs print a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import anyio

from services.cli import (
    access,
    agents,
    calendar,
    cluster,
    keys,
    ledger,
    read,
    rebuild,
    reports,
    run,
    runs,
    status,
    targets,
    tasks,
)
from services.cli import output as show
from services.runtime import logs, loop
from services.settings import Settings, SettingsError, load

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="settings file (default agentledger.toml, or $AGENTLEDGER_CONFIG)",
    )
    common.add_argument(
        "--home",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="data folder: NATS store, DuckDB files (default ./.agentledger)",
    )
    common.add_argument(
        "--nats-url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="use this NATS server instead of the embedded one",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log at the configured log_level (one-shot commands log warnings only)",
    )

    p = argparse.ArgumentParser(
        prog="agentledger",
        parents=[common],
        description="Event-sourced ops backbone for LLM-agent fleets (NATS JetStream + DuckDB).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, fn: Command, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, parents=[common], help=help, description=help)
        c.set_defaults(run=fn)
        return c

    c = command("up", run.up, "run nats-server and every service, each in its own process, supervised")
    c.add_argument(
        "--nats-port", type=int, default=None, help="embedded nats-server port (0: any free)"
    )
    c.add_argument("--http-port", type=int, default=None, help="gateway HTTP port")

    c = command("serve", run.serve, "run one service alone against the configured NATS")
    c.add_argument("service", choices=[
        "gateway", "projector", "tasks", "dispatcher", "scheduler", "notifier", "watchdog",
    ])
    c.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="projector: host only this projection (repeatable)",
    )
    c.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="gateway: N processes on the HTTP port (SO_REUSEPORT); default gateway_workers "
        "(0: half the cores, at least 1)",
    )
    c.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a worker's own

    c = command(
        "publish", ledger.publish, "validate and publish one event; prints its stream sequence"
    )
    c.add_argument(
        "subject", help="<domain>.<aggregate_id>.<event>, e.g. agents.architect.heartbeat"
    )
    c.add_argument("json", help='the payload, e.g. \'{"status":"busy"}\'')
    c.add_argument("--msg-id", default=None, help="Nats-Msg-Id for deduplication")

    c = command("sql", read.sql, "run read-only SQL on a projection, through the projector")
    c.add_argument("sql", help='a SELECT, e.g. "SELECT * FROM agents"')
    c.add_argument("--projection", default="agents", help="projection to query (default agents)")
    c.add_argument("--limit", type=int, default=None, help="row limit (default: the projector's)")
    c.add_argument("--json", action="store_true", help="print a JSON array of objects")
    c.add_argument("--after", metavar="POSITION", help=read.AFTER_HELP)

    c = command("rebuild", rebuild.rebuild, "rebuild a projection from seq 1 and swap it in")
    c.add_argument("projection")

    c = command("replay", rebuild.replay, "build a projection as it was at a time or sequence")
    c.add_argument(
        "--until", required=True, help="stream sequence or ISO time (UTC unless a zone is given)"
    )
    c.add_argument("--out", required=True, metavar="FILE", help="DuckDB file to write")
    c.add_argument("--projection", default="agents")
    c.add_argument("--force", action="store_true", help="overwrite --out if it exists")

    c = command("streams", ledger.streams, "list the JetStream streams with their sizes")
    c.add_argument("--json", action="store_true")

    c = command("rejects", read.rejects, "list payloads the projections could not decode")
    c.add_argument("--projection", default=None)
    c.add_argument("--limit", type=int, default=100, help="rows per page (at most 200)")
    c.add_argument("--offset", type=int, default=0, help="skip this many (newest first)")
    c.add_argument("--json", action="store_true")
    c.add_argument("--after", metavar="POSITION", help=read.AFTER_HELP)

    tasks.add_parsers(sub, common)
    agents.add_parsers(sub, common)
    runs.add_parsers(sub, common)
    keys.add_parsers(sub, common)
    access.add_parsers(sub, common)
    calendar.add_parsers(sub, common)
    reports.add_parsers(sub, common)
    targets.add_parsers(sub, common)
    status.add_parsers(sub, common)
    cluster.add_parsers(sub, common)
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    return load(
        getattr(args, "config", None),
        home=getattr(args, "home", None),
        nats_url=getattr(args, "nats_url", None),
        nats_port=getattr(args, "nats_port", None),
        http_port=getattr(args, "http_port", None),
    )


def main(argv: Sequence[str] | None = None) -> int:
    # everything agentledger writes (DuckDB files, snapshots, logs, credentials) is the owner's
    # alone; snapshot_group_read widens the snapshots only
    os.umask(0o077)
    args = parser().parse_args(argv)
    try:
        settings = settings_from(args)
        long_running = args.command in ("up", "serve", "cluster")
        verbose = long_running or getattr(args, "verbose", False)
        logs.configure(
            settings.log_level if verbose else max(logs.level_of(settings.log_level), 30)
        )
        return int(anyio.run(args.run, args, settings, backend_options=loop.backend_options()))
    except KeyboardInterrupt:
        show.fail("interrupted")
        return EXIT_INTERRUPTED
    except BaseException as exc:
        code = expected(exc)
        if code is None:
            raise
        show.fail(reason(exc))
        return code


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in leaves(e)]
    return [exc]


def expected(exc: BaseException) -> int | None:
    """The exit code of an error a person can act on, or None for a bug (traceback wanted)."""
    from events.core.errors import EventError, ValidationError
    from projections.catalog import UnknownProjection
    from projections.runtime.protocol import QueryError
    from services.gateway.app import ListenError
    from services.projector.host import ProjectorError
    from services.runtime.children import ChildFailed
    from services.runtime.credentials import CredentialsError
    from services.runtime.homelock import HomeBusy
    from services.runtime.natsd import NatsServerError
    from services.up import ServiceStopped

    found = [e for e in leaves(exc) if not isinstance(e, asyncio.CancelledError)]
    if not found:
        return None
    first = found[0]
    if isinstance(first, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(first, (SettingsError, ValidationError, run.UsageError, UnknownProjection)):
        return EXIT_USAGE
    if isinstance(first, QueryError) and first.code == "bad_request":
        return EXIT_USAGE  # refused SQL, a bad limit or position: the input is wrong
    if isinstance(first, (EventError, QueryError, NatsServerError, OSError, status.NotRunning)):
        return EXIT_FAILED
    if isinstance(first, (ServiceStopped, ChildFailed, ProjectorError, ListenError, CredentialsError, HomeBusy)):
        return EXIT_FAILED
    return None


def reason(exc: BaseException) -> str:
    from events.core.errors import ValidationError
    from projections.runtime.protocol import QueryError

    first = next(e for e in leaves(exc) if not isinstance(e, asyncio.CancelledError))
    if isinstance(first, ValidationError):
        text = str(first)
        return f"invalid input: {text}" + (
            f" [{first.field}]" if first.field and first.field not in text else ""
        )
    if isinstance(first, QueryError):
        return f"projector: {first.message} ({first.code})"
    if isinstance(first, OSError) and not str(first):
        return type(first).__name__
    return str(first) or type(first).__name__


if __name__ == "__main__":
    sys.exit(main())
