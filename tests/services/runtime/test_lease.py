"""The lease a singleton service holds: one holder at a time; a clean stop hands over at once, a
dead holder's lease expires (or is taken at once when its process is gone from this host), and a
holder that finds another's revision stops."""

from __future__ import annotations

import socket

import anyio
import msgspec
import pytest

from events.core.client import EventClient
from services.runtime.lease import BUCKET, Holder, Lease, LeaseLost, ensure_bucket
from tests.polling import eventually

TTL = 3.0  # the "at once" bounds below are TTL/2: generous on a loaded machine, short of an expiry


def dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has it now (pids are not reused this fast)


async def test_one_holder_at_a_time_and_a_clean_stop_hands_over_at_once(client: EventClient) -> None:
    js = client.js
    await ensure_bucket(js, ttl_s=TTL)
    first, second = Lease(js, "notifier", ttl_s=TTL), Lease(js, "notifier", ttl_s=TTL, holder=Holder("other-host", 1))
    taken: list[str] = []

    async def standby() -> None:
        await second.hold(task_status=_mark(taken, "second"))

    async with anyio.create_task_group() as outer:
        async with anyio.create_task_group() as tg:
            await tg.start(first.hold)
            outer.start_soon(standby)
            await anyio.sleep(TTL * 2)  # renewed meanwhile: the standby still waits
            assert taken == []
            tg.cancel_scope.cancel()  # a clean stop gives the lease back
        with anyio.fail_after(TTL):  # well before it would have expired
            await eventually(lambda: taken == ["second"], TTL, "the standby took over")
        outer.cancel_scope.cancel()


async def test_a_dead_holders_lease_expires_or_is_taken_at_once_when_its_process_is_gone(client: EventClient) -> None:
    js = client.js
    kv = await ensure_bucket(js, ttl_s=TTL)
    await kv.create("notifier", msgspec.json.encode(Holder("elsewhere", 4242)))
    lease = Lease(js, "notifier", ttl_s=TTL)
    with anyio.fail_after(TTL * 4):  # another host's holder: only expiry frees it
        async with anyio.create_task_group() as tg:
            await tg.start(lease.hold)
            tg.cancel_scope.cancel()
    await kv.put("notifier", msgspec.json.encode(Holder(socket.gethostname(), dead_pid())))
    with anyio.fail_after(TTL / 2):  # this host's holder is gone: taken without waiting
        async with anyio.create_task_group() as tg:
            await tg.start(Lease(js, "notifier", ttl_s=TTL).hold)
            tg.cancel_scope.cancel()


async def test_a_holder_that_finds_another_revision_stops(client: EventClient) -> None:
    js = client.js
    kv = await ensure_bucket(js, ttl_s=TTL)
    lease = Lease(js, "notifier", ttl_s=TTL)
    lost: list[str] = []

    async def hold() -> None:
        with pytest.raises(LeaseLost) as err:
            await lease.hold()
        lost.append(str(err.value))

    with anyio.fail_after(TTL * 3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(hold)
            await eventually(lambda: lease.revision > 0, TTL, "the lease is held")
            await kv.put("notifier", msgspec.json.encode(Holder("intruder", 7)))  # what a new holder writes
    assert "was taken by pid 7 on intruder" in lost[0]
    assert (await js.key_value(BUCKET)).__class__.__name__ == "KeyValue"


def _mark(into: list[str], name: str) -> anyio.abc.TaskStatus[None]:
    class Status:
        def started(self, value: None = None) -> None:
            into.append(name)

    return Status()  # type: ignore[return-value]
