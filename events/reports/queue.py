"""Per-target delivery queues folded from the reports: what the notifier sends next, and when.

Rules (the seed's queue, made per target):
- a target's queue holds the reports still `pending` for it, oldest filing (stream seq) first;
- only its head may be sent (`head`): while the head fails, the target waits for it, and no other
  target is held up;
- the head is due when it has no `retry_at` or that time has come (`due`, `next_at`);
- a report reopened by an operator's retry goes back to its place by filing order.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import datetime

from events.reports.decide import evolve, initial_state
from events.reports.model import Report, ReportEvent


class Board:
    """Every report folded so far, and each target's queue of (filing seq, report id)."""

    def __init__(self) -> None:
        self.reports: dict[str, Report] = {}
        self.last_seq: dict[str, int] = {}  # per report: the last stream seq about it
        self._queues: dict[str, list[tuple[int, str]]] = {}

    def get(self, report_id: str) -> Report:
        return self.reports.get(report_id) or initial_state(report_id)

    def apply(self, report_id: str, event: ReportEvent, at: datetime, seq: int) -> str | None:
        """Fold one event (seq: its stream seq); returns evolve's no-op reason, if any."""
        before = self.reports.get(report_id)
        after, reason = evolve(before or initial_state(report_id), event, at, seq)
        self.last_seq[report_id] = max(seq, self.last_seq.get(report_id, 0))
        if reason is not None:
            return reason
        self.reports[report_id] = after
        for target, d in after.deliveries.items():
            was = before.deliveries.get(target) if before is not None else None
            if d.status == "pending" and (was is None or was.status != "pending"):
                bisect.insort(self._queues.setdefault(target, []), (after.seq, report_id))
        return None

    def _pending(self, target: str, entry: tuple[int, str]) -> bool:
        d = self.reports[entry[1]].deliveries.get(target)
        return d is not None and d.status == "pending"

    def head(self, target: str) -> Report | None:
        """The oldest report still pending for `target` (entries no longer pending are dropped)."""
        q = self._queues.get(target)
        while q:
            if self._pending(target, q[0]):
                return self.reports[q[0][1]]
            q.pop(0)
        return None

    def due(self, target: str, now: datetime) -> Report | None:
        head = self.head(target)
        if head is None:
            return None
        retry_at = head.deliveries[target].retry_at
        return head if retry_at is None or retry_at <= now else None

    def next_at(self, target: str) -> datetime | None:
        """When the head may be tried (None: no head, or now)."""
        head = self.head(target)
        return head.deliveries[target].retry_at if head is not None else None

    def pending(self, target: str) -> Iterator[Report]:
        """The target's queue in order (a snapshot: safe to fold more while iterating)."""
        for entry in list(self._queues.get(target, [])):
            if self._pending(target, entry):
                yield self.reports[entry[1]]

    def targets(self) -> list[str]:
        return sorted(self._queues)
