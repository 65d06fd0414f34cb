"""The tasks command service: `cmd.tasks.<verb>` for tasks and mail (DESIGN §3, §5).

A request is `{"task_id": ..., **fields}` (mail: `{"message_id": ..., **fields}`); `create` and
`send_mail` make up an id when none is given. For each command: the state from the in-memory fold
(`services.tasks.fold`), the pure `decide`, then every emitted event appended as ONE atomic batch
with each aggregate's last seq as its expectation (0 for a new one). A lost race (`Conflict`)
waits until the fold holds the winner's events and decides again, at most `MAX_TRIES` times, so a
second claimer is told who won. The reply goes out only after JetStream acked:

    {"ok": true, "seq": N, "events": [{"subject", "seq", "event", "data"}], "task": {...}}
    {"ok": false, "error": {"code": "conflict|not_found|invalid|unavailable", "message", "field"?}}

Subscriptions use the queue group `agentledger-tasks`, so replicas share the work; OCC keeps
them from ever deciding twice on the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry import propagate, trace

from events import mail, tasks
from events.core import codec
from events.core.client import H_ACTOR, H_CAUSATION, Append, EventClient, barrier
from events.core.errors import Conflict, EventError, Unavailable, ValidationError
from events.core.subjects import build, check_id, command
from services.runtime.connection import close_quietly
from services.settings import Settings
from services.tasks.fold import Fold

log = logging.getLogger(__name__)

QUEUE = "agentledger-tasks"
MAX_TRIES = 5
MAX_IN_FLIGHT = 512
TASK_VERBS: dict[str, type] = tasks.VERBS
MAIL_VERBS: dict[str, type] = mail.VERBS
VERBS = (*TASK_VERBS, *MAIL_VERBS)
_ACTOR_FIELDS = ("agent_id", "by", "author", "from_agent")
_encoder = msgspec.json.Encoder()
_tracer = trace.get_tracer(__name__)


class CommandError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def error_body(code: str, message: str, field: str | None = None) -> bytes:
    err: dict[str, Any] = {"code": code, "message": message}
    if field:
        err["field"] = field
    return _encoder.encode({"ok": False, "error": err})


def _event_rows(domain: str, emitted: list[Any], seqs: list[int]) -> list[dict[str, Any]]:
    return [
        {"subject": build(domain, e[0], e[1].name), "seq": s, "event": e[1].name, "data": e[1]}
        for e, s in zip(emitted, seqs, strict=True)
    ]


class TasksService:
    """Answers the commands of one NATS connection from one fold; run it with `run`."""

    def __init__(self, nc: NATS, *, timeout: float = 5.0, max_tries: int = MAX_TRIES,
                 fold_nc: NATS | None = None, coo: str | None = None) -> None:
        self.nc = nc
        self.timeout = timeout
        self.max_tries = max_tries
        self.client = EventClient(nc, timeout=timeout)
        self.fold = Fold(fold_nc or nc)
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.coo = coo  # the one agent that may extend a task's rounds (besides the admin)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Fold the streams, then answer commands until cancelled."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.fold.run)
            try:
                for verb in VERBS:
                    for subject in (command("tasks", verb), command("tasks", verb) + ".*"):
                        self._subs.append(await self.nc.subscribe(subject, queue=QUEUE, cb=self._on_msg))
                await barrier(self.nc, self.timeout)
                log.info("tasks service answering %s on cmd.tasks.* (queue %s)", ", ".join(VERBS), QUEUE)
                task_status.started()
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    for sub in self._subs:
                        with contextlib.suppress(Exception):  # the connection may be closing
                            await sub.unsubscribe()
                    self._subs.clear()
                    if self._tasks:
                        await asyncio.wait(list(self._tasks), timeout=self.timeout)

    async def _on_msg(self, msg: Msg) -> None:
        await self._slots.acquire()  # holds the subscription back when too much is in flight
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _answer(self, msg: Msg) -> None:
        # cmd.tasks.<verb>, or cmd.tasks.<verb>.<agent_id>: an agent's own subject, the only one
        # its NATS permissions allow, so the server vouches for who is acting
        _, _, verb, *scope = msg.subject.split(".")
        headers = msg.headers or {}
        ctx = propagate.extract(headers) if "traceparent" in headers else None
        with _tracer.start_as_current_span(f"cmd.tasks.{verb}", context=ctx, kind=trace.SpanKind.SERVER) as span:
            try:
                body = await self.execute(verb, msg.data, headers, scope[0] if scope else None)
            except CommandError as exc:
                span.set_attribute("agentledger.error_code", exc.code)
                body = error_body(exc.code, exc.message, exc.field)
            except Exception as exc:  # a bug: say so, keep serving
                log.exception("cmd.tasks.%s failed", verb)
                span.record_exception(exc)
                body = error_body("unavailable", f"internal error in cmd.tasks.{verb}: {exc!r}")
        if msg.reply:
            try:
                await msg.respond(body)
            except Exception as exc:  # noqa: BLE001  (requester gone, connection closing)
                log.debug("cmd.tasks.%s: reply not sent: %s", verb, exc)

    # -- one command ---------------------------------------------------------------------------

    async def execute(
        self, verb: str, data: bytes, headers: dict[str, str] | None = None, agent: str | None = None
    ) -> bytes:
        """Decode, decide, append (with retries), and return the encoded reply.

        `agent`: the command came on the agent's own subject; it acts as that agent only (its
        actor fields are filled with it, or must name it).
        """
        if verb in TASK_VERBS:
            cls, id_field, prefix = TASK_VERBS[verb], "task_id", "T"
        elif verb in MAIL_VERBS:
            cls, id_field, prefix = MAIL_VERBS[verb], "message_id", "M"
        else:
            raise CommandError("invalid", f"unknown command cmd.tasks.{verb}; known: {', '.join(VERBS)}")
        fields = _object(data)
        agg = fields.pop(id_field, None)
        if agg is None and verb in ("create", "send_mail"):
            agg = new_id(prefix)
        if agg is None:
            raise CommandError("invalid", f"missing required field `{id_field}`", f"$.{id_field}")
        if agent is not None:
            if verb == "extend_rounds" and agent != self.coo:
                raise CommandError("forbidden", f"only the COO ({self.coo or 'none set'}) or the admin "
                                   f"may extend a task's rounds; agent {agent} may not")
            headers = {k: v for k, v in (headers or {}).items() if k != H_ACTOR}
            fields = _as_agent(verb, cls, fields, agent)
        if unknown := [k for k in fields if k not in cls.__struct_encode_fields__]:
            allowed = ", ".join(sorted((id_field, *cls.__struct_encode_fields__)))
            raise CommandError("invalid", f"unknown field {unknown[0]!r} for cmd.tasks.{verb}; allowed: {allowed}",
                               f"$.{unknown[0]}")
        try:
            check_id(agg, id_field)
            cmd = msgspec.convert(fields, cls)
        except ValidationError as exc:
            raise CommandError("invalid", exc.message, exc.field) from None
        except msgspec.ValidationError as exc:
            err = codec.validation_error(exc, cls=cls)
            raise CommandError("invalid", err.message, err.field) from None
        span = trace.get_current_span()
        span.set_attribute(f"agentledger.{id_field}", agg)
        actor = (headers or {}).get(H_ACTOR) or next(
            (v for f in _ACTOR_FIELDS if isinstance(v := getattr(cmd, f, None), str)), None
        )
        out = {H_ACTOR: actor} if actor else {}
        if causation := (headers or {}).get(H_CAUSATION):
            out[H_CAUSATION] = causation
        if id_field == "task_id":
            return await self._task(cmd, agg, out)
        return await self._mail(cmd, agg, out)

    async def _task(self, cmd: Any, task_id: str, headers: dict[str, str]) -> bytes:
        fold = self.fold
        try:
            emitted, seqs = await self._decide_and_append(
                "tasks", lambda now: tasks.decide(cmd, fold.task(task_id), fold.board, now),
                fold.task_seq, fold.apply_tasks, headers)
        except _StillChanging as exc:
            state = fold.task(task_id)
            holder = f", claimed by {state.claimed_by}" if state.claimed_by else ""
            raise CommandError("conflict", f"task {task_id} is {state.status}{holder}: still changing "
                                           f"after {self.max_tries} tries ({exc.last})") from None
        return _encoder.encode({"ok": True, "seq": seqs[-1] if seqs else fold.task_seq.get(task_id, 0),
                                "events": _event_rows("tasks", emitted, seqs), "task": fold.task(task_id)})

    async def _mail(self, cmd: Any, message_id: str, headers: dict[str, str]) -> bytes:
        fold = self.fold
        reply_to = getattr(cmd, "in_reply_to", None)

        def decide(now: datetime) -> list[Any]:
            original = fold.messages.get(reply_to) if reply_to else None
            return mail.decide(cmd, fold.message(message_id), now, original)

        try:
            emitted, seqs = await self._decide_and_append("mail", decide, fold.message_seq, fold.apply_mail, headers)
        except _StillChanging as exc:
            raise CommandError("conflict", f"message {message_id} still changing after {self.max_tries} tries "
                                           f"({exc.last})") from None
        return _encoder.encode({"ok": True, "seq": seqs[-1] if seqs else fold.message_seq.get(message_id, 0),
                                "events": _event_rows("mail", emitted, seqs), "message": fold.message(message_id)})

    async def _decide_and_append(
        self, domain: str, decide: Callable[[datetime], list[Any]], seqs: dict[str, int],
        apply: Callable[[list[Any], list[int], datetime], None], headers: dict[str, str],
    ) -> tuple[list[Any], list[int]]:
        """Decide on the fold's state and append what that emits as one atomic batch, each
        aggregate expected at its folded seq; a lost race waits for the winner's events and decides
        again. Returns what was emitted and its seqs (both empty when nothing changes)."""
        last: Conflict | None = None
        for _ in range(self.max_tries):
            now = datetime.now(UTC)
            try:
                emitted = decide(now)
            except (tasks.TaskRuleError, mail.MailRuleError) as exc:
                raise CommandError(exc.code, str(exc)) from None
            if not emitted:
                return [], []
            entries = [Append(e[0], e[1], seqs.get(e[0], 0)) for e in emitted]
            try:
                appended = await self.client.append_batch(entries, headers=headers)
            except Conflict as exc:
                last = exc
                await self._catch_up(domain, exc)
                continue
            except EventError as exc:
                raise CommandError(_code(exc), str(exc)) from None
            apply(emitted, appended, now)
            return emitted, appended
        raise _StillChanging(last)

    async def _catch_up(self, domain: str, exc: Conflict) -> None:
        trace.get_current_span().add_event("conflict", {"last_seq": exc.last_seq or 0})
        try:
            await self.fold.reach(domain, exc.last_seq, self.timeout)
        except Unavailable as err:
            raise CommandError("unavailable", str(err)) from None


class _StillChanging(Exception):
    def __init__(self, last: Conflict | None) -> None:
        super().__init__(str(last))
        self.last = last


def _object(data: bytes) -> dict[str, Any]:
    try:
        fields = msgspec.json.decode(data) if data else {}
    except msgspec.DecodeError as exc:
        raise CommandError("invalid", f"malformed JSON: {exc}", "$") from None
    if not isinstance(fields, dict):
        raise CommandError("invalid", f"expected a JSON object, got {type(fields).__name__}", "$")
    return fields


def _code(exc: EventError) -> str:
    if isinstance(exc, ValidationError):
        return "invalid"
    return "unavailable"


def _as_agent(verb: str, cls: type, fields: dict[str, Any], agent: str) -> dict[str, Any]:
    """The command's actor fields filled with `agent`, or refused when they name someone else."""
    out = dict(fields)
    for name in _ACTOR_FIELDS:
        if name not in cls.__struct_encode_fields__:  # type: ignore[attr-defined]
            continue
        given = out.setdefault(name, agent)
        if given != agent:
            raise CommandError(
                "forbidden", f"agent {agent} may send cmd.tasks.{verb} only as itself, not as "
                f"{name}={given!r}", f"$.{name}",
            )
    return out


# -- entry point --------------------------------------------------------------------------------


async def serve(settings: Settings, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Connect, make sure the streams exist, answer `cmd.tasks.*` until cancelled."""
    from events.core.streams import ensure_streams
    from services.projector.service import connect

    nc = await connect(settings, "agentledger-tasks")
    # the fold reads its own connection: its deliveries must not queue ahead of our acks
    fold_nc = await connect(settings, "agentledger-tasks-fold")
    try:
        await ensure_streams(nc.jetstream(), **settings.stream_options())
        await TasksService(nc, timeout=settings.request_timeout_s, fold_nc=fold_nc,
                           coo=settings.watchdog_coo).run(task_status=task_status)
    finally:
        with anyio.CancelScope(shield=True):
            await close_quietly(fold_nc)
            await close_quietly(nc)
