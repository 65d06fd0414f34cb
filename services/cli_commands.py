"""The CLI's commands: each takes the parsed arguments and Settings and returns an exit code.

Only this layer and `cli_output` print. Errors are raised, not printed: `services.cli.main` turns
the expected ones into one line and an exit code.
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec

from services import cli_output as show
from services import loop
from services.connection import connect_once, redact
from services.settings import Settings

log = logging.getLogger(__name__)


class UsageError(Exception):
    """The command line itself is wrong (exit code 2); the message says how."""


@asynccontextmanager
async def until_signalled() -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group cancelled by the first SIGINT/SIGTERM; later signals are ignored while it stops."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for signum in signals:
                    log.info("%s received; stopping", signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

            tg.start_soon(watch)
            yield tg


# --- long-running --------------------------------------------------------------------------


async def up(args: argparse.Namespace, settings: Settings) -> int:
    from services import up as supervisor

    async with until_signalled() as tg:
        running: supervisor.Running = await tg.start(supervisor.run, settings)
        loop.freeze_started()
        where = f"embedded, store {running.home / 'nats'}" if running.embedded else "external"
        show.line("agentledger is up")
        show.line(f"  HTTP       {running.http_url}  (health {running.http_url}/health)")
        show.line(f"  NATS       {running.nats_url}  ({where})")
        show.line(
            f"  snapshots  {running.snapshot_dir}/<projection>.snapshot.duckdb (open read-only)"
        )
        show.line("Ctrl-C stops everything.")
    show.note("agentledger stopped")
    return 0


async def serve(args: argparse.Namespace, settings: Settings) -> int:
    nc = await connect_once(settings.url)
    await nc.close()
    if args.service == "gateway":
        if args.only:
            raise UsageError("--only applies to the projector")
        from services.gateway import app as gateway

        target: Callable[..., Awaitable[Any]] = gateway.serve
        what = f"gateway listening on {settings.http_url}"
    elif args.service == "tasks":
        if args.only:
            raise UsageError("--only applies to the projector")
        from services import tasks

        target = tasks.serve
        what = "tasks service answering on cmd.tasks.*"
    else:
        from projections import catalog
        from services import projector

        catalog.select(args.only)

        async def target(s: Settings, *, task_status: Any) -> None:
            await projector.serve(s, args.only or None, task_status=task_status)

        what = f"projector {settings.projector_name} answering on q.{settings.projector_name}"
    async with until_signalled() as tg:
        await tg.start(target, settings)
        loop.freeze_started()
        show.line(f"{what} (NATS {redact(settings.url)}); Ctrl-C stops it")
    show.note(f"{args.service} stopped")
    return 0


# --- events ---------------------------------------------------------------------------------


def parse_payload(text: str) -> Any:
    try:
        return msgspec.json.decode(text.encode())
    except msgspec.DecodeError as exc:
        raise UsageError(f"invalid JSON payload: {exc}") from None


async def publish(args: argparse.Namespace, settings: Settings) -> int:
    from events.client import EventClient, prepare_json

    out = prepare_json(args.subject, parse_payload(args.json), msg_id=args.msg_id, where="$")
    nc = await connect_once(settings.url)
    try:
        seq = await EventClient(nc, timeout=settings.request_timeout_s).send(out)
    finally:
        await nc.close()
    show.line(str(seq))
    return 0


async def streams(args: argparse.Namespace, settings: Settings) -> int:
    nc = await connect_once(settings.url)
    try:
        js = nc.jetstream(timeout=settings.request_timeout_s)
        try:
            infos = await js.streams_info()
        except Exception as exc:
            from events.errors import Unavailable

            reason = getattr(exc, "description", None) or str(exc) or type(exc).__name__
            raise Unavailable(f"cannot list streams: {reason}") from exc
    finally:
        await nc.close()
    columns = ["stream", "subjects", "messages", "bytes", "first_seq", "last_seq", "consumers"]
    rows = [
        [
            i.config.name,
            ", ".join(i.config.subjects or []),
            i.state.messages,
            i.state.bytes,
            i.state.first_seq,
            i.state.last_seq,
            i.state.consumer_count,
        ]
        for i in sorted(infos, key=lambda i: i.config.name or "")
    ]
    if args.json:
        show.records_json(columns, rows)
    else:
        show.table(columns, [r[:3] + [show.human_bytes(r[3])] + r[4:] for r in rows])
    return 0


# --- queries --------------------------------------------------------------------------------


@asynccontextmanager
async def _queries(settings: Settings) -> AsyncIterator[Any]:
    from projections.protocol import QueryClient

    nc = await connect_once(settings.url)
    try:
        yield QueryClient(nc, settings.projector_name, settings.query_timeout_s + 1.0)
    finally:
        await nc.close()


async def sql(args: argparse.Namespace, settings: Settings) -> int:
    async with _queries(settings) as q:
        rows = await q.sql(args.projection, args.sql, args.limit)
    _rows(args, rows.columns, rows.rows)
    if rows.truncated:
        show.note(f"(truncated at {len(rows.rows)} rows; pass --limit to change)")
    return 0


async def rejects(args: argparse.Namespace, settings: Settings) -> int:
    async with _queries(settings) as q:
        rows = await q.rejects(args.projection, args.limit)
    _rows(args, rows.columns, rows.rows)
    return 0


def _rows(args: argparse.Namespace, columns: list[str], rows: list[list[Any]]) -> None:
    if args.json:
        show.records_json(columns, rows)
    else:
        show.table(columns, rows)
        show.note(f"{len(rows)} row{'s' if len(rows) != 1 else ''}")


# --- rebuild / replay -----------------------------------------------------------------------


def parse_until(text: str) -> int | datetime:
    """A stream sequence (digits) or an ISO 8601 time; a time without zone is taken as UTC."""
    if text.isdigit():
        return int(text)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise UsageError(
            f"--until {text!r} is neither a sequence number nor an ISO time "
            "(e.g. 2026-11-21T13:00:00Z)"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def _reachable(settings: Settings) -> None:
    """Fail fast with one line when NATS is down (the projector's own connect retries forever)."""
    nc = await connect_once(settings.url)
    await nc.close()


async def rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from projections import catalog
    from services import projector

    catalog.get(args.projection)
    await _reachable(settings)
    with show.progress_bar(f"rebuild {args.projection}") as bar:
        result = await projector.rebuild(settings, args.projection, progress=bar)
    show.line(_summary(f"rebuilt {args.projection}", result, bar.done))
    return 0


async def replay(args: argparse.Namespace, settings: Settings) -> int:
    from projections import catalog

    catalog.get(args.projection)
    until = parse_until(args.until)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to overwrite it")
    from services import projector

    await _reachable(settings)
    with show.progress_bar(f"replay {args.projection} until {args.until}") as bar:
        result = await projector.replay(settings, args.projection, until, out, progress=bar)
    show.line(_summary(f"replayed {args.projection} into {out}", result, bar.done))
    return 0


def _summary(head: str, result: Any, done: int) -> str:
    """`rebuilt agents: read 1200 events, checkpoints AGENTS=1200, previous kept as ...`."""
    parts = [f"read {done} events"]
    checkpoints = result.get("checkpoints", result) if isinstance(result, dict) else {}
    if isinstance(checkpoints, dict) and checkpoints:
        parts.append("checkpoints " + " ".join(f"{k}={v}" for k, v in checkpoints.items()))
    if isinstance(result, dict) and result.get("previous"):
        parts.append(f"previous kept as {result['previous']}")
    return f"{head}: " + ", ".join(parts)
