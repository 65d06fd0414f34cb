"""`agentledger sql` and `agentledger rejects`: reads asked of the projector, printed as tables or JSON."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from services.cli import output as show
from services.runtime.connection import connect_once
from services.settings import Settings


@asynccontextmanager
async def queries(settings: Settings) -> AsyncIterator[Any]:
    from projections.runtime.protocol import QueryClient

    nc = await connect_once(settings.url_as(settings.identity))
    try:
        yield QueryClient(nc, settings.projector_name, settings.query_timeout_s + 1.0)
    finally:
        await nc.close()


AFTER_HELP = "a stream position a write printed (TASKS:42): wait until the read includes it"


def after_option(text: str | None) -> dict[str, int] | None:
    """`--after TASKS:42`, the position a write printed: the read waits until it is applied."""
    from projections.runtime.protocol import parse_after

    return parse_after(text, "--after") or None


async def sql(args: argparse.Namespace, settings: Settings) -> int:
    async with queries(settings) as q:
        rows = await q.sql(args.projection, args.sql, args.limit, after_option(args.after))
    print_rows(args, rows.columns, rows.rows)
    if rows.truncated:
        show.note(f"(truncated at {len(rows.rows)} rows; pass --limit to change)")
    return 0


async def rejects(args: argparse.Namespace, settings: Settings) -> int:
    async with queries(settings) as q:
        rows = await q.rejects(args.projection, args.limit, after_option(args.after), offset=args.offset)
    print_rows(args, rows.columns, rows.rows)
    if rows.truncated:
        show.note(f"(more: --offset {args.offset + len(rows.rows)}; payloads are cut to 2 KB, "
                  "payload_bytes is the full size)")
    return 0


def print_rows(args: argparse.Namespace, columns: list[str], rows: list[list[Any]]) -> None:
    if args.json:
        show.records_json(columns, rows)
    else:
        show.table(columns, rows)
        show.note(f"{len(rows)} row{'s' if len(rows) != 1 else ''}")


# --- rebuild / replay -----------------------------------------------------------------------
