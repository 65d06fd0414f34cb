"""`ReportClient`: file owner reports from Python, and act on them as an operator.

    async with await EventClient.connect(url) as ec:
        filed = await ReportClient(ec).file(team="clawteam", worker="backend-a", task_id="T1",
                                            progress="80%", done="export complete",
                                            next="wait for aggregation", status="normal")

A report without targets goes to the targets marked default; a named target must exist. Filing
returns once JetStream acked the event (`seq`), or at once for a repeat of the same report
(`duplicate`); `dry_run=True` resolves and renders everything and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from events import targets as targets_domain
from events.core import codec, reader
from events.core.client import EventClient
from events.core.errors import Conflict, ValidationError
from events.core.subjects import check_id
from events.reports.decide import decide, evolve, initial_state
from events.reports.model import (
    Abandon,
    File,
    Report,
    ReportCommand,
    ReportEvent,
    ReportFiled,
    Retry,
)
from events.reports.render import new_id, text

RETRIES = 5


@dataclass(frozen=True)
class Filed:
    report_id: str
    targets: list[str]
    text: str
    seq: int | None = None  # None: a dry run, or a repeat that wrote nothing
    duplicate: bool = False
    dry_run: bool = False


class ReportClient:
    def __init__(self, client: EventClient) -> None:
        self.client = client

    async def live_targets(self) -> dict[str, targets_domain.Target]:
        states = await reader.fold(self.client.js, "targets", targets_domain.initial_state, targets_domain.evolve)
        return {n: t for n, (t, _) in states.items() if t.live}

    async def prepare(self, report_id: str | None = None, *, targets: list[str] | None = None,
                      **fields: Any) -> tuple[str, ReportFiled]:
        """The id and the event `file` would write: validated, targets resolved."""
        report_id = check_id(report_id, "report_id") if report_id else new_id(datetime.now(UTC))
        known = await self.live_targets()
        if targets:
            for i, name in enumerate(targets):
                if name not in known:
                    raise ValidationError(f"unknown target {name!r}; known: {', '.join(sorted(known)) or 'none'}",
                                          field=f"$.targets[{i}]")
        else:
            targets = sorted(n for n, t in known.items() if t.default and t.enabled)
            if not targets:
                raise ValidationError("no target: name one, or mark a target default", field="$.targets")
        try:
            event = msgspec.convert({**fields, "targets": targets}, ReportFiled)
        except msgspec.ValidationError as exc:
            raise codec.validation_error(exc, cls=ReportFiled) from None
        return report_id, event

    async def file(self, report_id: str | None = None, *, targets: list[str] | None = None,
                   dry_run: bool = False, **fields: Any) -> Filed:
        report_id, event = await self.prepare(report_id, targets=targets, **fields)
        if dry_run:
            return Filed(report_id, list(event.targets), text(event), dry_run=True)
        seqs = await self.execute(report_id, File(event=event), msg_id=f"filed:{report_id}")
        return Filed(report_id, list(event.targets), text(event), seq=seqs[-1] if seqs else None,
                     duplicate=not seqs)

    async def file_event(self, report_id: str, event: ReportFiled) -> list[int]:
        """File an already built report (alert notices); [] when it was filed already."""
        return await self.execute(report_id, File(event=event), msg_id=f"filed:{report_id}")

    async def get(self, report_id: str) -> tuple[Report, int]:
        states = await reader.fold(self.client.js, "reports", initial_state, evolve, check_id(report_id, "report_id"))
        return states.get(report_id, (initial_state(report_id), 0))

    async def abandon(self, report_id: str, *, reason: str, target: str | None = None) -> list[int]:
        return await self.execute(report_id, Abandon(reason=reason, target=target, by="operator"))

    async def retry(self, report_id: str, *, target: str | None = None) -> list[int]:
        return await self.execute(report_id, Retry(target=target))

    async def execute(self, report_id: str, cmd: ReportCommand, *, msg_id: str | None = None) -> list[int]:
        """Decide on the report's current state and append with OCC; [] when nothing changes.
        Rule errors (`events.reports.ReportRuleError`) propagate for the caller to map."""
        for attempt in range(1, RETRIES + 1):
            state, seq = await self.get(report_id)
            events: list[ReportEvent] = decide(cmd, state, datetime.now(UTC))
            if not events:
                return []
            ids = [msg_id] * len(events) if msg_id and len(events) == 1 else None
            try:
                return await self.client.append(report_id, events, expected_seq=seq, msg_ids=ids)
            except Conflict:
                if attempt == RETRIES:
                    raise
        return []  # pragma: no cover
