"""`agentledger publish` and `agentledger streams`: one event written, the streams listed."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from services.cli import output as show
from services.cli.run import UsageError
from services.runtime.connection import connect_once
from services.settings import Settings


def parse_payload(text: str) -> Any:
    try:
        return msgspec.json.decode(text.encode())
    except msgspec.DecodeError as exc:
        raise UsageError(f"invalid JSON payload: {exc}") from None


async def publish(args: argparse.Namespace, settings: Settings) -> int:
    from events.core.client import EventClient, prepare_json

    out = prepare_json(args.subject, parse_payload(args.json), msg_id=args.msg_id, where="$")
    nc = await connect_once(settings.url_as(settings.identity))
    try:
        seq = await EventClient(nc, timeout=settings.request_timeout_s).send(out)
    finally:
        await nc.close()
    show.line(str(seq))
    return 0


async def streams(args: argparse.Namespace, settings: Settings) -> int:
    nc = await connect_once(settings.url_as(settings.identity))
    try:
        js = nc.jetstream(timeout=settings.request_timeout_s)
        try:
            infos = await js.streams_info()
        except Exception as exc:
            from events.core.errors import Unavailable

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
