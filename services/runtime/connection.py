"""Short-lived NATS connections for the CLI and the supervisor: fail fast, say why, stay quiet.

nats-py's defaults suit a long-running service (retry the first connect for two minutes, log
every failed attempt with a traceback); a command a person typed should instead answer within
seconds with one line. Long-running services open their own reconnecting connections.
"""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client as NATS

from events.core.errors import Unavailable
from events.core.inbox import inbox_for
from events.core.streams import ensure_streams
from services.settings import Settings

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 3.0


def redact(url: str) -> str:
    """A NATS URL (or comma-separated list) without credentials, fit to print or log."""
    out = []
    for one in url.split(","):
        scheme, sep, rest = one.strip().partition("://")
        host = rest.rsplit("@", 1)[-1] if sep else scheme.rsplit("@", 1)[-1]
        out.append(f"{scheme}{sep}{host}" if sep else host)
    return ",".join(out)


async def connect_once(
    url: str, *, timeout: float = CONNECT_TIMEOUT_S, name: str = "agentledger-cli"
) -> NATS:
    """Connect with one retry; Unavailable naming the (redacted) URL and the last error."""
    seen: list[Exception] = []

    async def quiet(exc: Exception) -> None:
        seen.append(exc)
        log.debug("NATS %s: %s", redact(url), exc)

    try:
        # max_reconnect_attempts=0 would mean "forever"; 1 gives one retry after reconnect_time_wait.
        return await nats.connect(
            url.split(","),
            name=name,
            inbox_prefix=inbox_for(url),
            connect_timeout=timeout,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.25,
            error_cb=quiet,
        )
    except Exception as exc:
        last = seen[-1] if seen else exc
        reason = str(last) or type(last).__name__
        raise Unavailable(f"cannot connect to NATS at {redact(url)}: {reason}") from exc


async def ensure_streams_at(nc: NATS, settings: Settings) -> dict[str, str]:
    """Create or update every domain stream with the configured options, and the leases bucket."""
    from services.runtime.lease import BUCKET, ensure_bucket

    js = nc.jetstream(timeout=settings.request_timeout_s)
    try:
        out = await ensure_streams(js, **settings.stream_options())
        await ensure_bucket(js, replicas=settings.replicas)
        out[f"KV_{BUCKET}"] = "ensured"
        return out
    except Exception as exc:
        reason = getattr(exc, "description", None) or str(exc) or type(exc).__name__
        raise Unavailable(f"cannot create or update the streams: {reason}") from exc


async def close_quietly(nc: NATS, *, drain: bool = False) -> None:
    """Close a service's connection on the way out, whatever state NATS is in.

    A service stops because it was asked to; if nats-server (or a cluster node) went away at the
    same moment, the close itself fails (broken pipe, reconnecting) and would otherwise turn a
    clean stop into an error that hides why the service was stopped.
    """
    try:
        await (nc.drain() if drain else nc.close())
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        log.debug("NATS connection closed with %r", exc)
