"""The notifier: delivers each target's queue of reports, oldest first, one in flight per target.

One worker per target sends its queue's head (`events.reports.Board.due`), records what the
platform answered through the pure decider, and only then looks at the next report: a failing
target waits for its head (retry with backoff and jitter, or the platform's hint) while every other
target goes on. Nothing is marked delivered unless the kind said `ok` (the platform's 2xx and,
where the platform has one, its own status in the body), and a delivery recorded in the stream is
never attempted again, including after a restart: the fold rebuilds the queues from REPORTS.

The outcome of an attempt is recorded with a deterministic Nats-Msg-Id
(`<event>:<report>:<target>:<attempt>`), retried until JetStream acks it; the worker does not move
on before. A crash between the platform's answer and that ack loses the outcome, and the report
is sent again after the restart (the README says so; webhooks carry an Idempotency-Key for it).
Two notifiers would each send the head of the same queue, so a notifier works only while it holds
the lease `notifier` (`services.runtime.lease`): a second one waits as a standby and takes over
when the first stops (at once) or dies (when its lease expires).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS

from events import reports, targets
from events.core.client import EventClient
from events.core.errors import Conflict, EventError
from events.core.keyring import Keyring, KeyringError
from services import targets as target_commands
from services.notifier.fold import Fold
from services.notifier.kinds import KINDS, Message, Outcome, Target
from services.runtime.connection import close_quietly
from services.runtime.lease import while_held
from services.settings import Settings
from services.targets import KeyringMissing

log = logging.getLogger(__name__)

RECORD_RETRY_S = (0.1, 0.5, 1.0, 2.0, 5.0)


def utc_now() -> datetime:
    return datetime.now(UTC)


def message(report: reports.Report, target: str) -> Message:
    filed = report.filed
    assert filed is not None
    return Message(report.id, target, reports.title(filed), reports.text(filed), filed)


class Notifier:
    def __init__(
        self, nc: NATS, *, keyring: Keyring | None, policy: reports.Policy = reports.DEFAULT_POLICY,
        timeout_s: float = 10.0, fold_nc: NATS | None = None, clock: Callable[[], datetime] = utc_now,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.client = EventClient(nc)
        self.fold = Fold(fold_nc or nc)
        self.keyring = keyring
        self.policy = policy
        self.timeout_s = timeout_s
        self.clock = clock
        self.jitter = jitter
        self.http: aiohttp.ClientSession | None = None
        self._workers: set[str] = set()
        self._opened: dict[str, dict[str, str]] = {}  # secrets token -> secrets, in memory only

    # -- running ---------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Fold the streams, then deliver until cancelled."""
        await self.check_keys()
        async with aiohttp.ClientSession() as http, anyio.create_task_group() as tg:
            self.http = http
            await tg.start(self.fold.run)
            changed = self.fold.listen()
            log.info("notifier delivering to %d targets", len(self.fold.board.targets()))
            task_status.started()
            while True:
                for name in self.fold.board.targets():
                    if name not in self._workers:
                        self._workers.add(name)
                        tg.start_soon(self._worker, name)
                await changed.wait()
                changed.clear()

    async def check_keys(self) -> None:
        """Start-up check, as the gateway does for backends: every live target's secrets open
        with this keyring, else stop naming the key id, rather than fail every delivery later."""
        states = await target_commands.load(self.client.js)
        tokens = [t.secrets for t, _ in states.values() if t.live and t.secrets]
        if tokens and self.keyring is None:
            raise KeyringMissing("targets have encrypted secrets but no keyring is configured: "
                                 "set AGENTLEDGER_KEYRING or keyring_file")
        if self.keyring is not None:
            self.keyring.require(tokens)

    async def _worker(self, name: str) -> None:
        changed = self.fold.listen()
        board = self.fold.board
        while True:
            changed.clear()
            now = self.clock()
            report = board.due(name, now)
            config = self.fold.targets.get(name)
            if report is not None and not (config is not None and config.live and not config.enabled):
                await self.attempt(name, report)
                continue
            next_at = board.next_at(name) if report is None else None
            wait = (next_at - now).total_seconds() if next_at is not None else math.inf
            with anyio.move_on_after(max(wait, 0.001)):
                await changed.wait()

    async def drain(self, *, only: str | None = None, max_count: int | None = 1,
                    dry_run: bool = False) -> list[dict[str, Any]]:
        """One pass by hand (the seed's watchdog), not alongside a running notifier: per target,
        its oldest pending reports up to `max_count` (None: all), stopping that target at its
        first failure; backoff is not waited for. Dry run: what would be sent, nothing sent or
        written. Returns one row per report looked at."""
        if not dry_run:
            await self.check_keys()
        async with aiohttp.ClientSession() as http, anyio.create_task_group() as tg:
            self.http = http
            await tg.start(self.fold.run)
            done = await self._drain(only, max_count, dry_run)
            tg.cancel_scope.cancel()
        return done

    async def _drain(self, only: str | None, max_count: int | None, dry_run: bool) -> list[dict[str, Any]]:
        done: list[dict[str, Any]] = []
        for name in [only] if only else self.fold.board.targets():
            for n, report in enumerate(self.fold.board.pending(name)):
                if max_count is not None and n >= max_count:
                    break
                row = {"report_id": report.id, "target": name, "title": message(report, name).title}
                if dry_run:
                    done.append({**row, "outcome": "dry_run", "text": message(report, name).text})
                    continue
                outcome = await self.attempt(name, report)
                done.append({**row, "outcome": "delivered" if outcome.ok else outcome.outcome,
                             "status_code": outcome.status_code, "error": outcome.error})
                if not outcome.ok:
                    break
        return done

    # -- one attempt -----------------------------------------------------------------------------

    async def attempt(self, name: str, report: reports.Report) -> Outcome:
        """Send `report` to target `name` and record the outcome; returns it."""
        target = self.resolve(name)
        if isinstance(target, Outcome):
            outcome = target
        else:
            assert self.http is not None
            try:
                outcome = await KINDS[target.kind](message(report, name), target, self.http)
            except Exception as exc:  # a bug in a kind: a failed attempt, never a success
                log.exception("report %s to %s: the %s kind failed", report.id, name, target.kind)
                outcome = Outcome(False, error=f"internal error in the {target.kind} kind: {type(exc).__name__}")
        if outcome.ok:
            log.info("report %s delivered to %s (status %s)", report.id, name, outcome.status_code)
        else:
            log.warning("report %s to %s failed: %s", report.id, name, outcome.error)
        await self.record(report.id, name, outcome)
        return outcome

    def resolve(self, name: str) -> Target | Outcome:
        """The target with its secrets opened, or the failure that makes it unusable now."""
        t = self.fold.targets.get(name)
        if t is None or not t.live:
            return Outcome(False, error=f"target {name} is {'removed' if t else 'not configured'}")
        secrets: dict[str, str] = {}
        if t.secrets:
            secrets = self._opened.get(t.secrets) or {}
            if not secrets:
                if self.keyring is None:
                    return Outcome(False, error=f"no keyring to open the secrets of target {name}")
                try:
                    secrets = msgspec.json.decode(self.keyring.decrypt(t.secrets, targets.aad(name)))
                except (KeyringError, msgspec.DecodeError) as exc:
                    return Outcome(False, error=f"target {name}: {exc}")
                self._opened[t.secrets] = secrets
        return Target(name, t.kind, t.settings, secrets, self.timeout_s)

    async def record(self, report_id: str, target: str, outcome: Outcome) -> None:
        """Decide on the outcome and append what it gives, expecting the report's last seq as
        folded: an operator's abandon or retry that landed meanwhile is folded first and the
        outcome decided again on it. A failed append (NATS away) is retried until acked."""
        jitter, tries = self.jitter(), 0
        while True:
            now = self.clock()
            state = self.fold.board.get(report_id)
            expected = self.fold.board.last_seq.get(report_id, 0)
            cmd = reports.Record(target=target, ok=outcome.ok, outcome=outcome.outcome,
                                 status_code=outcome.status_code, error=outcome.error,
                                 message_id=outcome.message_id, retry_after_s=outcome.retry_after_s,
                                 jitter=jitter)
            events = reports.decide(cmd, state, now, self.policy)
            if not events:
                return
            n = state.deliveries[target].attempts + 1
            ids = [f"{e.name}:{report_id}:{target}:{n}" for e in events]
            try:
                seqs = await self.client.append(report_id, events, expected_seq=expected, msg_ids=ids)
            except Conflict as exc:
                await self.fold.reach(exc.last_seq, self.timeout_s)
                continue
            except EventError as exc:
                pause = RECORD_RETRY_S[min(tries, len(RECORD_RETRY_S) - 1)]
                tries += 1
                log.error("report %s to %s: recording %s failed (try %d), retrying in %.1fs: %s",
                          report_id, target, events[0].name, tries, pause, exc)
                await anyio.sleep(pause)
                continue
            self.fold.apply_own(report_id, events, seqs, now)
            return


async def serve(settings: Settings, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Connect, make sure the streams exist, deliver until cancelled."""
    from events.core.streams import ensure_streams
    from services.projector.service import connect

    keyring = settings.load_keyring()
    nc = await connect(settings, "agentledger-notifier")
    fold_nc = await connect(settings, "agentledger-notifier-fold")
    try:
        await ensure_streams(nc.jetstream(), **settings.stream_options())
        notifier = Notifier(nc, keyring=keyring, policy=settings.report_policy(),
                            timeout_s=settings.report_timeout_s, fold_nc=fold_nc)
        await while_held(nc.jetstream(timeout=settings.request_timeout_s), "notifier", notifier.run,
                         task_status=task_status)
    finally:
        with anyio.CancelScope(shield=True):
            await close_quietly(fold_nc)
            await close_quietly(nc)
