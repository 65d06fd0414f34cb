"""The scheduler service (`agentledger serve scheduler`): the calendar's policy loop.

Three loops over one connection:
- sync, every `calendar_sync_interval_s` (a doubling backoff after failures, up to the interval),
  then a check right away (`services.scheduler.sync`);
- check, every `calendar_check_interval_s`, or earlier when the next slot is due sooner: the
  pure `events.calendar.decide` over the claw's synced copy, the agents read model (and the
  backend's agent status, when it offers one) and the outcomes already recorded. A wake records
  `slot_due` first, then wakes, then `wake_sent`; a skip records `wake_skipped` with its reason.
  Outcomes carry msg ids `calendar:<claw>:<agent>:<slot>:<due>`, and the fold knows every
  outcome, so a restarted scheduler repeats none; a slot that fell due while it was down is
  decided at start (woken inside its window, else skipped `outside_window`). Agents' status
  reports are forwarded to the backend (`POST /calendar/agent/status`) and `status_forwarded`
  recorded, once per report;
- heartbeat, every `calendar_heartbeat_interval_s`: the claw's liveness ping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import anyio
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS

from events.agents import AgentWoken
from events.calendar import (
    Calendar,
    Decision,
    SlotDue,
    StatusForwarded,
    WakeSent,
    WakeSkipped,
    agent_views,
    decide,
    due_slots,
    resolve,
)
from events.core.client import EventClient, prepare
from events.core.errors import EventError
from projections.runtime.protocol import QueryClient, QueryError
from services.dispatcher.wake import WakeFailed
from services.runtime.connection import close_quietly
from services.scheduler.backend import Backend, BackendError
from services.scheduler.history import CalendarLog
from services.scheduler.sync import Syncer
from services.scheduler.wake import CalendarWaker
from services.settings import Settings

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, settings: Settings, nc: NATS, *, clock: Callable[[], datetime] | None = None) -> None:
        if not settings.calendar_url:
            raise ValueError("calendar_url is not set: the scheduler has no calendar to sync from")
        self.settings = settings
        self.claw = settings.claw_identifier
        self.tz = ZoneInfo(settings.calendar_timezone)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.events = EventClient(nc, timeout=settings.request_timeout_s)
        self.history = CalendarLog(nc, settings.request_timeout_s)
        self.backend = Backend(settings.calendar_url, self.claw, settings.request_timeout_s,
                               settings.calendar_token)
        self.syncer = Syncer(self.backend, self.events, self.history, self.tz, self.clock)
        self.queries = QueryClient(nc, settings.projector_name, settings.query_timeout_s)
        self.waker = CalendarWaker(settings, nc)
        self._checked = anyio.Event()

    # -- one check -----------------------------------------------------------------------------

    async def check(self) -> list[Decision]:
        """Decide and act on every due slot without an outcome; the decisions taken."""
        cal = await self.history.catch_up()
        await self._forward(cal)
        mirror, now = cal.mirror(self.claw), self.clock()
        schedules = {a: list(s.values()) for a, s in mirror.schedules.items()}
        undecided = [d for d in due_slots(schedules, mirror.date, now, self.tz)
                     if (d.agent, d.slot.key, d.at) not in cal.outcomes]
        if not undecided:  # the usual case: nobody asked anything
            return []
        rows = (await self.queries.query("agents", "list")).records()
        statuses = {}
        for agent in sorted({d.agent for d in undecided}):
            try:
                if (status := await self.backend.agent_status(agent)) is not None:
                    statuses[agent] = status
            except BackendError as exc:
                log.debug("calendar: backend status of %s unavailable: %s", agent, exc)
        decisions = decide(schedules, mirror.date, now, self.tz, decided=cal.outcomes.keys(),
                           agents=agent_views(rows, statuses))
        return [await self._act(d) for d in decisions]

    async def _act(self, d: Decision) -> Decision:
        """Record and carry out one decision; the decision as it turned out (a wake that could
        not be delivered is a skip)."""
        ids = [f"calendar:{self.claw}:{d.agent}:{x.slot.key}:{x.at}" for x in d.dues]
        if d.wake:
            await self.events.publish_many([
                prepare(d.agent, SlotDue(slot_id=x.slot.key, due_at=x.at, priority=x.slot.priority), msg_id=f"due:{i}")
                for x, i in zip(d.dues, ids, strict=True)
            ])
            try:
                session = await self.waker.wake(d.agent, d.dues)
            except (WakeFailed, OSError) as exc:
                log.warning("calendar: waking %s failed: %s", d.agent, exc)
                d = d._replace(wake=False, reason="wake_failed", detail=str(exc)[:2000])
        if d.wake:
            channel = self.waker.channel
            outcomes = [WakeSent(slot_id=x.slot.key, due_at=x.at, channel=channel, session=session) for x in d.dues]  # type: ignore[arg-type]
        else:
            outcomes = [WakeSkipped(slot_id=x.slot.key, due_at=x.at, reason=d.reason, detail=d.detail)  # type: ignore[arg-type]
                        for x in d.dues]
        outgoing = [prepare(d.agent, e, msg_id=i) for e, i in zip(outcomes, ids, strict=True)]
        if d.wake:
            woken = AgentWoken(via=channel, session_id=session, reason="calendar")  # type: ignore[arg-type]
            outgoing.append(prepare(d.agent, woken, msg_id=f"woken:{ids[0]}"))
        await self.events.publish_many(outgoing)
        log.info("calendar: %s %s for slots %s (%s)", "woke" if d.wake else "skipped", d.agent,
                 ", ".join(x.slot.key for x in d.dues), d.reason or "due")
        return d

    async def _forward(self, cal: Calendar) -> None:
        """Pass the claw's agents' status reports on to the backend, each once."""
        mine = cal.mirror(self.claw).schedules
        for r in cal.reports:
            if r.seq in cal.forwarded or r.agent not in mine:
                continue
            body = {"agent_id": r.agent, "status": r.event.status}
            if r.event.slot_id is not None:
                body |= {"slot_id": r.event.slot_id, "slot_status": r.event.slot_status}
            try:
                status = await self.backend.report_status(body)
            except BackendError as exc:
                log.warning("calendar: forwarding report seq %d of %s failed (retried next check): %s", r.seq, r.agent, exc)
                continue
            await self.events.publish(self.claw, StatusForwarded(report_seq=r.seq, ok=True, http_status=status),
                                      msg_id=f"forward:{self.claw}:{r.seq}")
            cal.forwarded.add(r.seq)

    def next_wait(self) -> float:
        """Seconds to the next check: the interval, or less when a slot falls due sooner."""
        interval = self.settings.calendar_check_interval_s
        mirror, now = self.history.calendar.mirror(self.claw), self.clock()
        if mirror.date is None:
            return interval
        soonest = interval
        for slots in mirror.schedules.values():
            for s in slots.values():
                at = resolve(s.scheduled_at, mirror.date, self.tz)
                if at is not None and at > now:
                    soonest = min(soonest, (at - now).total_seconds())
        return max(soonest, 0.05)

    # -- the loops -------------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        while True:
            try:
                await self.syncer.step()
            except EventError as exc:
                log.warning("calendar: sync not recorded: %s", exc)
            self._checked.set()
            await anyio.sleep(self.syncer.delay(self.settings.calendar_sync_interval_s))

    async def _check_loop(self) -> None:
        while True:
            try:
                await self.check()
            except (QueryError, EventError) as exc:
                log.warning("calendar: check skipped: %s", exc)
            self._checked = anyio.Event()
            with anyio.move_on_after(self.next_wait()):
                await self._checked.wait()

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.backend.heartbeat()
            except BackendError as exc:
                log.warning("calendar: heartbeat of claw %s failed: %s", self.claw, exc)
            await anyio.sleep(self.settings.calendar_heartbeat_interval_s)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Catch up with the stream (the token and the outcomes), then loop until cancelled."""
        await self.history.catch_up()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._check_loop)  # first: what fell due while we were down
                tg.start_soon(self._sync_loop)
                tg.start_soon(self._heartbeat_loop)
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True):
                await self.close()

    async def close(self) -> None:
        await self.backend.close()
        await self.waker.close()


async def serve(settings: Settings, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Connect and schedule until cancelled."""
    from events.core.streams import ensure_streams
    from services.projector.service import connect
    from services.runtime.lease import while_held

    nc = await connect(settings, "agentledger-scheduler")
    try:
        await ensure_streams(nc.jetstream(), **settings.stream_options())
        # one scheduler per claw: each claw's calendar has a lease of its own
        await while_held(nc.jetstream(timeout=settings.request_timeout_s), f"scheduler.{settings.claw_identifier}",
                         Scheduler(settings, nc).run, task_status=task_status)
    finally:
        with anyio.CancelScope(shield=True):
            await close_quietly(nc)
