"""`agentledger rebuild` and `agentledger replay`: a projection built again from the streams, now or as it was."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.cli import output as show
from services.cli.run import UsageError
from services.runtime.connection import connect_once
from services.settings import Settings


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
    nc = await connect_once(settings.url_as(settings.identity))
    await nc.close()


async def rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from projections import catalog
    from services.projector import service as projector

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
    from services.projector import service as projector

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
