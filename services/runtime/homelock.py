"""One home, one owner: `<home>/agentledger.lock` names the process that runs on this home.

Two owners would open the same JetStream store and the same DuckDB files (nats-server and DuckDB
refuse that deep inside, with a long traceback). The lock is an OS lock (`flock`) on the file,
held for the life of the process, so it disappears with its holder however it dies: a lock file
left by a dead process (a stale pid) is simply taken over. The file's text says who holds it (pid,
command, start time, ports) so the refusal can name the holder in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger(__name__)
LOCK_NAME = "agentledger.lock"


class HomeBusy(Exception):
    """Another live process owns this home; the message names it."""


class Holder(msgspec.Struct, kw_only=True):
    pid: int
    command: str
    started_at: float
    ports: dict[str, int] = {}


class HomeLock:
    def __init__(self, home: Path, command: str) -> None:
        self.path = Path(home) / LOCK_NAME
        self.holder = Holder(pid=os.getpid(), command=command, started_at=time.time())
        self._fd: int | None = None

    def acquire(self) -> HomeLock:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = _read(fd)
            os.close(fd)
            raise HomeBusy(f"home {self.path.parent} is in use by {describe(text)}; "
                           "stop that one first or choose another --home") from None
        previous = _read(fd)
        if previous:
            log.info("home %s: taking over the lock left by %s (no longer running)",
                     self.path.parent, describe(previous))
        self._fd = fd
        self._write()
        return self

    def ports(self, **ports: int) -> None:
        """Record the ports once they are known (a free port is chosen at start)."""
        self.holder.ports.update(ports)
        self._write()

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the flock

    def _write(self) -> None:
        if self._fd is None:
            return
        data = msgspec.json.encode(self.holder) + b"\n"
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)


@contextlib.contextmanager
def hold(home: Path, command: str) -> Iterator[HomeLock]:
    lock = HomeLock(home, command).acquire()
    try:
        yield lock
    finally:
        lock.release()


SUPERVISOR_ENV = "AGL_SUPERVISOR_PID"  # set by `up` in its children's environment


def held_by_parent(home: Path) -> bool:
    """True when the `up` that started us holds the home's lock: it runs `serve projector` as its
    child, which then works under that lock instead of refusing a busy home. Both the variable
    `up` sets and the lock file must name our parent."""
    try:
        holder = msgspec.json.decode((Path(home) / LOCK_NAME).read_bytes(), type=Holder)
    except (OSError, msgspec.DecodeError):
        return False
    return str(holder.pid) == os.environ.get(SUPERVISOR_ENV) == str(os.getppid())


def _read(fd: int) -> bytes:
    return os.pread(fd, 4096, 0)


def describe(text: bytes) -> str:
    """`pid 123 (agentledger up, started 2026-12-01T14:00:00Z, http 8080, nats 4222)`."""
    try:
        h = msgspec.json.decode(text, type=Holder)
    except msgspec.DecodeError:  # ValidationError included
        return "another process (its lock file names none)"
    details: list[Any] = [f"agentledger {h.command}",
                          "started " + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(h.started_at))]
    details += [f"{name} {port}" for name, port in h.ports.items()]
    return f"pid {h.pid} ({', '.join(details)})"
