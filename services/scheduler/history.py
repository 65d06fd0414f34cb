"""The CALENDAR stream read into a `Calendar` fold, caught up on demand.

Calendars are small (a few slots per agent per day), so catching up reads the messages one by
one (`next_by_subj` gets) rather than keeping a consumer open: the scheduler catches up before
each decision, the gateway before each answer of the calendar API, and neither needs more than
the events since the last time.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import anyio
import nats.js.errors
from nats.aio.client import Client as NATS

from events.calendar import Calendar
from events.core import codec
from events.core.errors import EventError, Unavailable
from events.core.streams import stream_name
from events.core.subjects import domain_filter, parse

log = logging.getLogger(__name__)
STREAM = stream_name("calendar")
SUBJECTS = domain_filter("calendar")


class CalendarLog:
    def __init__(self, nc: NATS, timeout: float = 5.0) -> None:
        self.js = nc.jetstream(timeout=timeout)
        self.calendar = Calendar()
        self._lock = anyio.Lock()

    async def catch_up(self) -> Calendar:
        """The fold with every event stored so far (one catch-up at a time)."""
        async with self._lock:
            cal = self.calendar
            while True:
                try:
                    raw = await self.js.get_msg(STREAM, seq=cal.seq + 1, subject=SUBJECTS, next=True)
                except nats.js.errors.NotFoundError:
                    return cal
                except Exception as exc:  # whatever NATS raised, the caller sees one error
                    raise Unavailable(f"cannot read {STREAM} after seq {cal.seq}: {exc}") from exc
                self.apply(raw.subject or "", raw.data or b"", int(raw.seq or 0), raw.time)

    def apply(self, subject: str, data: bytes, seq: int, at: datetime | None) -> None:
        """Fold one stored message; an undecodable one moves the position and nothing else."""
        cal = self.calendar
        if seq <= cal.seq:
            return
        try:
            event = codec.decode(subject, data)
            aggregate = parse(subject).aggregate_id
        except EventError as exc:
            log.debug("%s seq %d: undecodable, skipped: %s", subject, seq, exc)
            cal.seq = seq
            return
        reason = cal.apply(aggregate, event, at or datetime.now(UTC), seq)  # type: ignore[arg-type]
        if reason is not None:
            log.debug("%s seq %d: no-op: %s", subject, seq, reason)
