"""Server-sent events passed through as they arrive, with the time to the first token measured.

Nothing is sent to the client before the upstream's first bytes arrived, so until then a failure
still fails over (`relay` returns None). Once a byte went out, a broken upstream ends the stream
with an SSE `error` event and the end of the body: the client never hangs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import aiohttp
import orjson
from aiohttp import web

if TYPE_CHECKING:
    from services.gateway.proxy.attempt import Attempt

TAIL_BYTES = 16 * 1024


async def relay(request: web.Request, att: Attempt, resp: aiohttp.ClientResponse, t0: float) -> web.StreamResponse | None:
    try:
        first = await resp.content.readany()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        att.upstream_s += time.perf_counter() - t0
        att.error = "timeout" if isinstance(exc, TimeoutError) else "connect"
        att.detail = f"{type(exc).__name__}: {exc}"[:500]
        return None
    att.ttft_ms = (time.perf_counter() - t0) * 1000
    att.upstream_s += time.perf_counter() - t0
    att.status = resp.status
    out = web.StreamResponse(status=200, headers={
        "Content-Type": resp.headers.get("Content-Type", "text/event-stream"),
        "Cache-Control": "no-cache",
    })
    await out.prepare(request)
    tail = bytearray(first)
    chunk = first
    try:
        while chunk:
            try:
                await out.write(chunk)
            except (ConnectionError, RuntimeError) as exc:  # the client went away
                att.error, att.detail = "client_gone", f"{type(exc).__name__}: {exc}"[:500]
                return out
            t1 = time.perf_counter()
            try:
                chunk = await resp.content.readany()
            finally:
                att.upstream_s += time.perf_counter() - t1
            tail += chunk
            if len(tail) > TAIL_BYTES:
                del tail[: len(tail) - TAIL_BYTES]
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        att.error = "stream_broken"
        att.detail = f"{type(exc).__name__}: {exc}"[:500]
        err = {"error": {"code": "upstream_stream_broken",
                         "message": f"the upstream stream broke: {type(exc).__name__}"}}
        try:
            await out.write(b"event: error\ndata: " + orjson.dumps(err) + b"\n\n")
        except (ConnectionError, RuntimeError):
            return out
    att.tokens = stream_tokens(bytes(tail))
    try:
        await out.write_eof()
    except (ConnectionError, RuntimeError):
        pass
    return out


def stream_tokens(tail: bytes) -> tuple[int, int]:
    """The `usage` of the last chunk that has one (sent with `stream_options.include_usage`)."""
    for line in reversed(tail.split(b"\n")):
        if not line.startswith(b"data:") or b'"usage"' not in line:
            continue
        try:
            found = orjson.loads(line[5:].strip()).get("usage")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if isinstance(found, dict):
            p, c = found.get("prompt_tokens") or 0, found.get("completion_tokens") or 0
            return (p if isinstance(p, int) else 0, c if isinstance(c, int) else 0)
    return 0, 0
