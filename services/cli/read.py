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

    nc = await connect_once(settings.url)
    try:
        yield QueryClient(nc, settings.projector_name, settings.query_timeout_s + 1.0)
    finally:
        await nc.close()


async def sql(args: argparse.Namespace, settings: Settings) -> int:
    async with queries(settings) as q:
        rows = await q.sql(args.projection, args.sql, args.limit)
    print_rows(args, rows.columns, rows.rows)
    if rows.truncated:
        show.note(f"(truncated at {len(rows.rows)} rows; pass --limit to change)")
    return 0


async def rejects(args: argparse.Namespace, settings: Settings) -> int:
    async with queries(settings) as q:
        rows = await q.rejects(args.projection, args.limit)
    print_rows(args, rows.columns, rows.rows)
    return 0


def print_rows(args: argparse.Namespace, columns: list[str], rows: list[list[Any]]) -> None:
    if args.json:
        show.records_json(columns, rows)
    else:
        show.table(columns, rows)
        show.note(f"{len(rows)} row{'s' if len(rows) != 1 else ''}")


# --- rebuild / replay -----------------------------------------------------------------------
