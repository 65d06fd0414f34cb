"""One sync with the calendar backend, recorded: full the first time, then diffs from the token.

- no token yet (first start, or after a resync): a full download;
- a token: `since=<token>`; the diff is checked against the claw's copy (`diff_events`) and its
  slot events and the new token are appended as one atomic batch, so the copy and its token never
  disagree, even after a crash in between;
- `410 Gone` or a refused token (`gone`), a diff that does not apply (`bad_diff`), or a new day in
  the calendar's zone (`date_changed`): `resynced` with the reason, then a full download;
- a backend error or timeout: `sync_failed` with the HTTP status and the error; the caller backs off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

import msgspec

from events.calendar import (
    BadDiff,
    CalendarEvent,
    Resynced,
    ScheduleSynced,
    Slot,
    SyncFailed,
    diff_events,
    today,
)
from events.core.client import MAX_BATCH, Append, EventClient
from events.core.subjects import check_id
from services.scheduler.backend import Backend, BackendError, TokenGone
from services.scheduler.history import CalendarLog

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 300.0


class Syncer:
    def __init__(self, backend: Backend, events: EventClient, history: CalendarLog, tz: tzinfo,
                 clock: Callable[[], datetime]) -> None:
        self.backend, self.events, self.history, self.tz, self.clock = backend, events, history, tz, clock
        self.claw = backend.claw
        self.failures = 0

    def delay(self, interval: float) -> float:
        """Seconds to the next sync: the interval, or a doubling backoff after failures."""
        if self.failures == 0:
            return interval
        return min(interval, MAX_BACKOFF_S, 2.0 ** (self.failures - 1))

    async def step(self) -> str:
        """One sync; returns what happened: `full`, `diff` or `failed`."""
        mirror = (await self.history.catch_up()).mirror(self.claw)
        since = mirror.token
        if since and mirror.date and mirror.date != today(self.clock(), self.tz):
            await self._record([(self.claw, Resynced(reason="date_changed", detail=f"schedule of {mirror.date}"))])
            since = None
        try:
            try:
                answer = await self.backend.sync(since)
            except TokenGone as exc:
                await self._record([(self.claw, Resynced(reason="gone", detail=str(exc)))])
                answer = await self.backend.sync(None)
            if answer.get("full"):
                return await self._full(answer)
            try:
                changes = diff_events(self.claw, mirror, answer["diff"])
            except BadDiff as exc:
                log.warning("calendar: claw %s: diff does not apply, resyncing: %s", self.claw, exc)
                await self._record([(self.claw, Resynced(reason="bad_diff", detail=str(exc)[:2000]))])
                return await self._full(await self.backend.sync(None))
        except BackendError as exc:
            self.failures += 1
            log.warning("calendar: sync of claw %s failed (%d in a row): %s", self.claw, self.failures, exc)
            await self._record([(self.claw, SyncFailed(error=str(exc)[:2000], status=exc.status, attempt=self.failures))])
            return "failed"
        token = ScheduleSynced(full=False, token=answer["syncToken"], changes=len(changes))
        await self._record([*changes, (self.claw, token)])
        self.failures = 0
        return "diff"

    async def _full(self, answer: dict[str, Any]) -> str:
        if not answer.get("full"):
            raise BackendError("asked for a full sync, the backend answered a diff")
        schedules = _schedules(answer["schedules"])
        day = answer.get("date") if isinstance(answer.get("date"), str) else today(self.clock(), self.tz)
        event = ScheduleSynced(full=True, token=answer["syncToken"], date=day, schedules=schedules,
                               changes=sum(len(s) for s in schedules.values()))
        await self._record([(self.claw, event)])
        self.failures = 0
        return "full"

    async def _record(self, events: list[tuple[str, CalendarEvent]]) -> None:
        """Append as one atomic batch (split only past the batch limit, the token last)."""
        for i in range(0, len(events), MAX_BATCH):
            await self.events.append_batch([Append(a, e) for a, e in events[i : i + MAX_BATCH]])


def _schedules(raw: Any) -> dict[str, list[Slot]]:
    """A full answer's schedules, checked: an agent id or slot that does not fit is a BackendError
    naming it (nothing of the answer is kept)."""
    out: dict[str, list[Slot]] = {}
    for agent, slots in raw.items():
        try:
            check_id(agent, "agent")
            out[agent] = msgspec.convert(slots, list[Slot])
        except (ValueError, msgspec.ValidationError) as exc:
            raise BackendError(f"full sync: schedules[{agent!r}]: {exc}") from None
    return out
