"""The projector's side of ad-hoc SQL: slots of its own, one worker process per query, killed at
the timeout.

A query in the projector's own process could take its memory (10 GB for one cross join), ignore
`interrupt()` while it parses or binds (100,000 columns), keep shutdown waiting and make the named
queries queue behind it. Here it cannot: it runs in a child process on the read-only snapshot,
under the limits `worker.py` sets, and the parent only waits, with a deadline, for a bounded
answer. At the deadline, on cancellation (shutdown) or when the answer outgrows what a NATS
message may carry, the child is killed (SIGKILL: no phase of DuckDB can ignore it). Once queries
have overlapped, workers are started ahead, one per slot (`keep_spares`), so a burst of queries
does not also bring a burst of interpreter start-ups. Workers run in a session of their own under
SCHED_IDLE from their first instruction (`launcher.py`): the API's processes always have the cores
first. Queries beyond
the slots are refused at once, not queued, so the answer says why instead of timing out.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import anyio
import msgspec
from anyio.abc import ByteReceiveStream, Process, TaskGroup, TaskStatus

from projections.runtime.adhoc.launcher import command, cpu_seconds
from projections.runtime.protocol import QueryError

log = logging.getLogger(__name__)
WORKER = command("projections.runtime.adhoc.worker")
STDERR_TAIL = 2000
SPARE_STAGGER_S = 0.25  # between two spare start-ups (0.3 s of CPU each, at the lowest priority)


class AdHocSql:
    def __init__(self, *, slots: int = 4, timeout_s: float = 10.0, memory_mb: int = 256,
                 threads: int = 1, max_bytes: int = 1024 * 1024) -> None:
        self.slots = slots
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.threads = threads
        self.max_bytes = max_bytes
        self.running: set[int] = set()  # pids of workers running a query
        self._starting = 0
        self.refused = 0
        self._spares: list[Process] = []
        self._dying: set[int] = set()  # killed or ended, not yet reaped: their slot is still taken
        self._reaper: TaskGroup | None = None
        self._wanted = anyio.Event()
        self._burst = anyio.Event()

    @property
    def busy(self) -> int:
        return len(self.running) + self._starting + len(self._dying)

    async def run(self, path: Path, sql: str, limit: int) -> dict[str, Any]:
        """The reply of one query on the snapshot at `path`; QueryError on any failure."""
        if self.busy >= self.slots:
            self.refused += 1
            raise QueryError("unavailable", f"all {self.slots} SQL slots are busy with other queries; "
                                            "try again when one has ended (named queries are not affected)")
        request = msgspec.json.encode({"path": str(path), "sql": sql, "limit": limit, "memory_mb": self.memory_mb,
                                       "threads": self.threads, "timeout_s": self.timeout_s})
        if self.busy:
            self._burst.set()  # queries overlap: from now on keep workers ready
        self._starting += 1  # the slot is taken from here on, also while a worker starts
        try:
            proc = await self._spare() or await _spawn()
        except OSError as exc:
            raise QueryError("unavailable", f"cannot start an SQL worker: {exc}") from None
        finally:
            self._starting -= 1
        self.running.add(proc.pid)
        try:
            return await self._answer(proc, request)
        finally:
            self.running.discard(proc.pid)
            if self._reaper is None:
                await _end(proc)
                self._wanted.set()
            else:  # answer now: a killed worker's exit runs at its idle priority, maybe slowly
                self._dying.add(proc.pid)
                if proc.returncode is None:
                    proc.kill()
                self._reaper.start_soon(self._reap, proc)

    async def _reap(self, proc: Process) -> None:
        """Its slot stays taken until the process is gone, so the memory cap holds per slot."""
        try:
            await _end(proc)
        finally:
            self._dying.discard(proc.pid)
            self._wanted.set()  # replaced once the query is over, not while it competes for the CPU

    async def keep_spares(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep one started worker per slot waiting (interpreter and DuckDB loaded), so queries
        arriving together do not all pay the start-up at that moment, on the cores the service
        needs; a used spare is replaced once its query is over. Started once two queries have
        overlapped (one query at a time pays one start-up, which is cheaper than four idle
        workers), killed when cancelled. While it runs, finished workers are reaped in the
        background, after their answer went out."""
        async with anyio.create_task_group() as reaper:
            self._reaper = reaper
            task_status.started()
            try:
                await self._burst.wait()  # not before queries overlap: most hosts never see that
                while True:
                    while len(self._spares) < self.slots:
                        if self._spares:  # one start-up at a time: four at once held up the API
                            await anyio.sleep(SPARE_STAGGER_S)
                        try:
                            self._spares.append(await _spawn())
                        except OSError as exc:  # no spare then: queries start their own worker
                            log.warning("cannot start a spare SQL worker: %s", exc)
                            break
                    self._wanted = anyio.Event()
                    await self._wanted.wait()
            finally:
                self._reaper = None
                spares, self._spares = self._spares, []
                for proc in spares:
                    await _end(proc)

    def _timed_out(self, cpu_before: float, cpu_after: float) -> str:
        message = f"query stopped after {self.timeout_s:g}s (its worker was killed)"
        cpu = cpu_after - cpu_before
        if min(cpu_before, cpu_after) >= 0 and cpu < self.timeout_s / 2:  # starved, not slow: say so
            message += (f"; it had {cpu:.1f}s of CPU in that time, as ad-hoc SQL runs at the lowest CPU "
                        "priority and the host was busy: try again when it is quieter")
        return message

    async def _spare(self) -> Process | None:
        while self._spares:
            proc = self._spares.pop(0)
            if proc.returncode is None:
                return proc
            await _end(proc)  # died waiting (killed from outside): reap it, take the next
        return None

    async def _answer(self, proc: Process, request: bytes) -> dict[str, Any]:
        out, err = bytearray(), bytearray()
        cpu_before = cpu_seconds(proc.pid)
        with anyio.move_on_after(self.timeout_s) as deadline:
            assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
            await proc.stdin.send(request)
            await proc.stdin.aclose()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_tail, proc.stderr, err)
                fits = await _collect(proc.stdout, out, self.max_bytes)
                tg.cancel_scope.cancel()
            if not fits:
                raise QueryError("bad_request", f"the answer is over the {self.max_bytes} bytes a NATS "
                                                "message may carry; ask for fewer rows (limit) or columns")
            await proc.wait()
        if deadline.cancelled_caught:
            raise QueryError("timeout", self._timed_out(cpu_before, cpu_seconds(proc.pid)))
        try:
            reply: dict[str, Any] = msgspec.json.decode(bytes(out))
        except msgspec.DecodeError:
            code = proc.returncode
            log.warning("sql worker pid %s ended with %s and no answer (%d bytes: %r); stderr: %r",
                        proc.pid, code, len(out), bytes(out[:200]), bytes(err[-500:]))
            raise QueryError("bad_request", f"the query's worker ended without an answer (exit {code}); "
                                            f"it likely ran out of its memory cap ({self.memory_mb} MB)") from None
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise QueryError(error.get("code", "internal"), error.get("message", "SQL worker error"))
        reply.pop("ok", None)
        return reply


async def _spawn() -> Process:
    # the worker needs no setting, so it gets none of the secrets (keyring, tokens) either
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLEDGER_")}
    env["MALLOC_ARENA_MAX"] = "2"  # one DuckDB thread needs no per-thread malloc arenas
    env["SQL_WORKER_PARENT"] = str(os.getpid())
    # the launcher lowers its own priority before anything else: nothing to do here
    return await anyio.open_process(WORKER, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True)


async def _end(proc: Process) -> None:
    """Kill (SIGKILL: no phase of DuckDB ignores it) and reap, even while being cancelled."""
    with anyio.CancelScope(shield=True):
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await proc.aclose()


async def _collect(stream: ByteReceiveStream, into: bytearray, limit: int) -> bool:
    """Read to the end; False as soon as more than `limit` bytes arrived."""
    async for chunk in stream:
        into += chunk
        if len(into) > limit:
            return False
    return True


async def _tail(stream: ByteReceiveStream, into: bytearray) -> None:
    """Read to the end (a full pipe would block the worker), keeping the last STDERR_TAIL bytes."""
    async for chunk in stream:
        into += chunk
        del into[:-STDERR_TAIL]
