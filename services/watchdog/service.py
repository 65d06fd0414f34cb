"""The watchdog service: the fold of the streams, a timer, and `events.watchdog.decide`.

Every `watchdog_interval_s` one pass decides on the fleet as folded; for each decision it acts
(`services.watchdog.actions`) and then records the decision under its key as `Nats-Msg-Id`, and
folds it at once so the next pass does not wait for the consumer. A restart folds the recorded
decisions back before its first pass, so no step is repeated; one killed between acting and
recording acts again on a task that is already released (refused, taken as done) and records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS

from events.core.client import EventClient
from events.core.errors import Unavailable
from events.watchdog import Decision, Policy, decide
from services.runtime.connection import close_quietly
from services.settings import Settings
from services.watchdog.actions import Actions
from services.watchdog.fold import Fold

log = logging.getLogger(__name__)


def policy_of(settings: Settings) -> Policy:
    return Policy(classes=settings.classes(), coo=settings.watchdog_coo,
                  analyst=settings.watchdog_analyst, tz=settings.heartbeat_tz,
                  cron=settings.heartbeat_wakes)


class Watchdog:
    def __init__(
        self, settings: Settings, nc: NATS, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        self.policy = policy_of(settings)
        self.events = EventClient(nc, timeout=settings.request_timeout_s)
        self.actions = Actions(nc, self.events, settings.request_timeout_s)
        self.fold = Fold(nc)
        self.clock = clock or (lambda: datetime.now(UTC))

    async def tick(self) -> list[Decision]:
        """One pass; returns the decisions recorded."""
        now = self.clock()
        done = []
        for d in decide(self.fold.fleet, now, self.policy):
            await self.actions.apply(d)
            seq = await self.events.publish(d.agent_id, d.event, msg_id=d.key)
            self.fold.fleet.apply("watchdog", d.agent_id, d.event, now, seq)
            log.info("watchdog %s %s: %s", d.event.name, d.key, d.event.cause)
            done.append(d)
        return done

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(self.fold.run)
            task_status.started()
            while True:
                try:
                    await self.tick()
                except Unavailable as exc:
                    log.warning("watchdog: pass stopped, next one retries: %s", exc)
                await anyio.sleep(self.settings.watchdog_interval_s)


async def serve(settings: Settings, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Connect as `tasks.serve` does, make sure the streams exist, watch until cancelled."""
    from events.core.streams import ensure_streams
    from services.projector.service import connect
    from services.runtime.lease import while_held

    nc = await connect(settings, "agentledger-watchdog")
    try:
        await ensure_streams(nc.jetstream(), **settings.stream_options())
        await while_held(nc.jetstream(timeout=settings.request_timeout_s), "watchdog",
                         Watchdog(settings, nc).run, task_status=task_status)
    finally:
        with anyio.CancelScope(shield=True):
            await close_quietly(nc)
