"""One holder at a time for a service that must not run twice, across processes and hosts, on a
JetStream key-value bucket: the notifier (two would each send the head of the same queue), the
watchdog and each claw's scheduler (two would each wake the same agent).

The lease is the key `<service>` in the bucket `agentledger_leases`, whose entries expire
`LEASE_TTL_S` after their last write. The holder writes it with `create` (only if absent) and
renews it every third of the TTL with `update` on the revision it last wrote, so a holder that
stalled past the TTL and finds someone else's revision knows it lost the lease (`LeaseLost`) and
stops instead of working beside the new holder. A holder that stops cleanly deletes the key, so
a standby takes over at once; one that died is replaced when its entry expires, or at once when
it was a process of this host that no longer exists (a restart after a crash does not wait).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable

import anyio
import msgspec
import nats.js.errors
from anyio.abc import TaskStatus
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from services.runtime.pids import alive

log = logging.getLogger(__name__)

BUCKET = "agentledger_leases"
LEASE_TTL_S = 15.0


class LeaseLost(Exception):
    """Another holder has the lease now: this one must stop its work."""


class Holder(msgspec.Struct, frozen=True):
    host: str
    pid: int

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def dead_here(self) -> bool:
        return self.host == socket.gethostname() and not alive(self.pid)


def bucket_config(ttl_s: float = LEASE_TTL_S, replicas: int = 1) -> KeyValueConfig:
    return KeyValueConfig(bucket=BUCKET, history=1, ttl=ttl_s, storage=StorageType.FILE,
                          replicas=replicas, description="agentledger: one holder per singleton service")


async def ensure_bucket(js: JetStreamContext, ttl_s: float = LEASE_TTL_S, replicas: int = 1) -> KeyValue:
    """The leases bucket, created if missing (by whoever may: `up` as the admin)."""
    try:
        return await js.key_value(BUCKET)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(bucket_config(ttl_s, replicas))


class Lease:
    def __init__(self, js: JetStreamContext, name: str, *, ttl_s: float = LEASE_TTL_S,
                 holder: Holder | None = None) -> None:
        self.js, self.name, self.ttl_s = js, name, ttl_s
        self.holder = holder or Holder(socket.gethostname(), os.getpid())
        self.revision = 0

    async def hold(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Wait for the lease, report started once it is ours, renew until cancelled (then give it
        back); LeaseLost when a renewal finds another holder's revision."""
        kv = await self._bucket()
        value = msgspec.json.encode(self.holder)
        waited = False
        while not await self._take(kv, value):
            if not waited:
                log.warning("lease %s is held by %s: waiting (it expires %gs after its last renewal)",
                            self.name, await self._current(kv), self.ttl_s)
                waited = True
            await anyio.sleep(self.ttl_s / 6)
        log.info("lease %s taken by %s", self.name, self.holder)
        task_status.started()
        try:
            while True:
                await anyio.sleep(self.ttl_s / 3)
                try:
                    self.revision = await kv.update(self.name, value, last=self.revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    raise LeaseLost(f"lease {self.name} was taken by {await self._current(kv)}: stopping, "
                                    f"as {self.holder} did not renew it within {self.ttl_s:g}s") from None
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                try:
                    await kv.delete(self.name, last=self.revision)
                except Exception as exc:  # noqa: BLE001  (gone, taken, or NATS down: it expires anyway)
                    log.debug("lease %s not given back (%r): it expires in %gs", self.name, exc, self.ttl_s)

    async def _bucket(self) -> KeyValue:
        try:
            return await ensure_bucket(self.js, self.ttl_s)
        except nats.js.errors.Error as exc:
            raise LeaseLost(f"cannot open or make the leases bucket {BUCKET} here ({exc}); "
                            "`agentledger up` makes it") from None

    async def _take(self, kv: KeyValue, value: bytes) -> bool:
        try:
            self.revision = await kv.create(self.name, value)
            return True
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        try:
            entry = await kv.get(self.name)
        except nats.js.errors.KeyNotFoundError:
            return False  # expired or deleted between the two calls: the next try creates it
        holder = _holder(entry.value)
        if holder is not None and holder.dead_here():
            try:
                self.revision = await kv.update(self.name, value, last=entry.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                return False
            log.info("lease %s: its holder %s is gone, taken over", self.name, holder)
            return True
        return False

    async def _current(self, kv: KeyValue) -> str:
        try:
            holder = _holder((await kv.get(self.name)).value)
        except nats.js.errors.KeyNotFoundError:
            return "nobody"
        return str(holder) if holder else "an unknown holder"


def _holder(data: bytes | None) -> Holder | None:
    try:
        return msgspec.json.decode(data or b"", type=Holder)
    except msgspec.DecodeError:
        return None


async def while_held(js: JetStreamContext, name: str, work: Callable[..., Awaitable[None]], *,
                     task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """`await work(task_status=...)` once the lease `name` is ours, and only while it is."""
    async with anyio.create_task_group() as tg:
        await tg.start(Lease(js, name).hold)
        await work(task_status=task_status)
        tg.cancel_scope.cancel()
