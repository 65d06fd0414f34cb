"""Keep the embedded nats-server running: restart it, with backoff, on the same port and store.

Everything else outlives a NATS restart on its own: every service reconnects forever, ordered
consumers are recreated after their heartbeats go silent, and the gateway's usage spool keeps
what NATS has not acked and sends it again with the same `Nats-Msg-Id` once it is back (JetStream
rebuilds its duplicate window from the store, so nothing lands twice). Stopping everything
because nats-server died, as `up` did, threw that spool away. The store is the same folder, so
JetStream recovers every stream from it; only what nats-server had not written yet is lost, and
that was never acked to anyone.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass

import anyio

from services.runtime.natsd import EmbeddedNats, NatsServerError

log = logging.getLogger(__name__)

WATCH_S = 0.2
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_S = 30.0  # up this long again: the next death starts the backoff from the beginning


@dataclass
class Restarts:
    """What the supervisor did, for the logs and the tests."""

    count: int = 0
    last_reason: str | None = None


def death_reason(server: EmbeddedNats) -> str:
    proc = server.proc
    if proc is None:
        return "nats-server is not running"
    code = proc.returncode
    if code is not None and code < 0:
        return f"nats-server (pid {proc.pid}) was killed by {signal.Signals(-code).name}"
    return f"nats-server (pid {proc.pid}) exited with code {code}: {server.log_tail()}"


async def keep_running(server: EmbeddedNats, restarts: Restarts | None = None) -> None:
    """Watch `server` until cancelled; restart it whenever it dies, never giving up."""
    restarts = restarts if restarts is not None else Restarts()
    delay = BACKOFF_MIN_S
    up_since = anyio.current_time()
    while True:
        proc = server.proc
        if proc is not None and proc.poll() is None:
            await anyio.sleep(WATCH_S)
            continue
        reason = death_reason(server)
        if anyio.current_time() - up_since >= STABLE_S:
            delay = BACKOFF_MIN_S
        log.error("%s; restarting it in %.1fs on the same port and store (%s)", reason, delay, server.store_dir)
        restarts.last_reason = reason
        await anyio.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX_S)
        try:
            await anyio.to_thread.run_sync(server.start)
        except NatsServerError as exc:
            log.error("nats-server restart failed: %s", exc)
            continue
        restarts.count += 1
        up_since = anyio.current_time()
        log.warning("nats-server restarted (pid %s, restart %d)", server.proc.pid if server.proc else "?",
                    restarts.count)
