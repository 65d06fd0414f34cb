"""The batch buffer: a batch closes at its size, at its age, or, when the loop was idle, at once
when the stream had nothing left behind the last message (a quiet stream's event is applied as it
arrives; a busy loop keeps batching)."""

from __future__ import annotations

import anyio

from projections.runtime.buffer import Buffer, Raw

HOUR_MS = 3_600_000


def raw(seq: int, stream: str = "AGENTS") -> Raw:
    return (stream, f"agents.a{seq}.heartbeat", b"{}", seq, seq, None)


async def test_a_caught_up_message_to_an_idle_loop_closes_the_batch_without_waiting_for_its_age() -> None:
    buffer = Buffer(batch_size=100, batch_ms=HOUR_MS)
    got: list[Raw] = []

    async def take() -> None:
        got.extend(await buffer.take())

    with anyio.fail_after(10):  # an hour's batch window: only caught_up can end this
        async with anyio.create_task_group() as tg:
            tg.start_soon(take)  # the loop asks while nothing waits: idle
            await anyio.sleep(0.05)
            buffer.append(raw(1))
            buffer.append(raw(2), caught_up=True)
    assert [r[3] for r in got] == [1, 2]
    assert not buffer.caught_up


async def test_a_busy_loop_waits_as_long_as_its_last_commit_took_when_caught_up() -> None:
    buffer = Buffer(batch_size=100, batch_ms=HOUR_MS)
    buffer.linger_s = 0.5
    buffer.append(raw(1))  # arrived while the loop was committing: it asks with work waiting
    buffer.append(raw(2), caught_up=True)
    taken: list[Raw] = []
    with anyio.move_on_after(0.1):
        taken = await buffer.take()
    assert taken == []  # not at once
    with anyio.fail_after(10):  # but not the hour either
        assert [r[3] for r in await buffer.take()] == [1, 2]


async def test_a_busy_loop_without_caught_up_waits_for_size_or_age() -> None:
    buffer = Buffer(batch_size=100, batch_ms=HOUR_MS)
    buffer.linger_s = 0.01
    buffer.append(raw(1))
    buffer.append(raw(2))
    taken: list[Raw] = []
    with anyio.move_on_after(0.3):
        taken = await buffer.take()
    assert taken == []


async def test_while_the_stream_has_more_the_batch_waits_to_fill() -> None:
    buffer = Buffer(batch_size=3, batch_ms=HOUR_MS)
    buffer.append(raw(1))
    buffer.append(raw(2))
    taken: list[Raw] = []
    with anyio.move_on_after(0.3):
        taken = await buffer.take()
    assert taken == []  # neither full, nor old, nor caught up
    buffer.append(raw(3))
    with anyio.fail_after(10):
        assert [r[3] for r in await buffer.take()] == [1, 2, 3]


async def test_an_idle_loop_waits_while_the_last_message_has_more_behind_it() -> None:
    buffer = Buffer(batch_size=100, batch_ms=HOUR_MS)
    taken: list[Raw] = []

    async def take() -> None:
        taken.extend(await buffer.take())

    with anyio.move_on_after(0.5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(take)
            await anyio.sleep(0.05)
            buffer.append(raw(1, "AGENTS"), caught_up=True)
            buffer.append(raw(7, "TASKS"), caught_up=False)  # another stream still has a backlog
    assert taken == []
