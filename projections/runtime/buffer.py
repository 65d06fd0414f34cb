"""Raw messages on their way from the consumers' callbacks to the batch loop.

The callback only appends; when `capacity` messages wait it waits too, which holds back the
flow-control answer and so the server: memory stays bounded however slow the projection is.

A batch closes at `batch_size` messages or once its oldest waited `batch_ms`, and sooner when the
last message came with nothing behind it in its stream (`caught_up`): waiting for more that is not
there only delays the read that follows a write. How much sooner depends on the loop: idle (nothing
waited when it asked), at once; busy, once the oldest message waited as long as the last commit
took (`linger_s`). A commit costs DuckDB about 10 ms whatever its size, so closing on every
caught-up message kept a core busy with one-event commits at a few hundred events/s; this way the
loop spends at most about half its time committing and a fresh event still waits ~2 commits, not
`batch_ms`.
"""

from __future__ import annotations

import time

import anyio

# stream, subject, data, stream seq, JetStream time in ns, headers
Raw = tuple[str, str, bytes, int, int, "dict[str, str] | None"]


class Buffer:
    def __init__(self, batch_size: int, batch_ms: int, capacity: int | None = None) -> None:
        self.items: list[Raw] = []
        self.batch_size = batch_size
        self.batch_s = batch_ms / 1000
        self.capacity = capacity or batch_size * 4
        self.first_at = 0.0
        self.closed = False
        self.caught_up = False  # the last message appended had nothing pending after it
        self.idle = False  # nothing waited when the loop last asked for a batch
        self.linger_s = 0.0  # how long the last commit took: a busy loop's wait for caught-up batches
        self._wake = anyio.Event()
        self._space = anyio.Event()

    def append(self, item: Raw, caught_up: bool = False) -> bool:
        """Add one message; True when the buffer is full and the caller must `wait_space`.
        `caught_up`: the stream had nothing after it, so the batch may close now."""
        items = self.items
        items.append(item)
        n = len(items)
        self.caught_up = caught_up
        if n == 1:
            self.first_at = time.monotonic()
            self._wake.set()
        elif n == self.batch_size or caught_up:
            self._wake.set()
        return n >= self.capacity

    async def wait_space(self) -> None:
        while len(self.items) >= self.capacity:
            if self._space.is_set():
                self._space = anyio.Event()
            await self._space.wait()

    @property
    def full(self) -> bool:
        return len(self.items) >= self.capacity

    def wake(self) -> None:
        self._wake.set()

    def discard(self, stream: str, after_seq: int) -> None:
        """Drop what a stale consumer of `stream` delivered beyond `after_seq`."""
        self.items = [r for r in self.items if r[0] != stream or r[3] <= after_seq]

    async def take(self) -> list[Raw]:
        """The next batch: `batch_size` messages, or fewer once the oldest waited `batch_ms`, or
        up to the one that caught up with its stream (at once when idle, else after `linger_s`)."""
        self.idle = not self.items
        while True:
            n = len(self.items)
            if n >= self.batch_size or (n and self.closed):
                break
            if n:
                age = time.monotonic() - self.first_at
                left = self.batch_s - age
                if self.caught_up:
                    left = 0.0 if self.idle else min(left, self.linger_s - age)
                if left <= 0:
                    break
            elif self.closed:
                return []
            else:
                # Nothing yet: wait for a message or a wake-up, and let the caller look around.
                if self._wake.is_set():
                    self._wake = anyio.Event()
                else:
                    await self._wake.wait()
                if not self.items:
                    return []
                continue
            if self._wake.is_set():
                self._wake = anyio.Event()
            with anyio.move_on_after(left):
                await self._wake.wait()
        batch = self.items[: self.batch_size]
        del self.items[: self.batch_size]
        if self.items:
            self.first_at = time.monotonic()
        else:
            self.caught_up = False
        self._space.set()
        return batch

    def close(self) -> None:
        self.closed = True
        self._wake.set()
