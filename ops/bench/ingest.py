"""Ingest benchmark: the SDK's pipelined `publish_many` vs. raw nats-py pipelined publishes.

Starts its own nats-server (temp store, free port, the repository's nats.conf), creates the
streams, then in the same run, alternating so that neither side gets a warmer server or disk:
  (a) raw: `js.publish_async` of N pre-encoded heartbeat payloads through a bounded window, then
      gather every ack;
  (b) sdk: `EventClient.publish_many` of the same N heartbeats, `prepare(...)`d inside the timed
      region (subject grammar check + msgspec encode), same window;
and prints one JSON object with both rates (best and median of the rounds) and their ratios; the
target is judged on the median of per-round ratios (raw and sdk of one round ran back to back, so
a noisy neighbour on a shared machine hits both).
Target: sdk >= 0.8 x raw. `--profile` prints where an SDK round spends its time (cProfile, stderr).

    python ops/bench/ingest.py [--events 200000] [--window 1024] [--rounds 3] [--profile]
                               [--durability always|interval]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib.metadata
import io
import json
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from nats.aio.client import Client as NATS

from events.agents import AgentHeartbeat
from events.core import codec
from events.core.client import EventClient, prepare
from events.core.streams import ensure_streams
from services.runtime.natsd import (
    EmbeddedNats,
    default_config,
    find_binary,
    free_port,
    with_durability,
)

TARGET_RATIO = 0.8
STATUSES = ("idle", "busy", "offline", "exhausted")


def heartbeats(n: int, agents: int) -> list[tuple[str, AgentHeartbeat]]:
    return [
        (
            f"agent-{i % agents:03d}",
            AgentHeartbeat(
                status=STATUSES[i % 4], current_task=f"TC-FLOW-{i % 977:03d}", round=i % 100
            ),
        )
        for i in range(n)
    ]


async def raw_round(nc: NATS, items: list[tuple[str, bytes]], window: int) -> float:
    js = nc.jetstream(publish_async_max_pending=window)
    start = time.perf_counter()
    futures = [await js.publish_async(subject, payload) for subject, payload in items]
    acks = await asyncio.gather(*futures)
    elapsed = time.perf_counter() - start
    assert len(acks) == len(items) and all(a.seq > 0 for a in acks)
    return elapsed


async def sdk_round(client: EventClient, events: list[tuple[str, AgentHeartbeat]]) -> float:
    start = time.perf_counter()
    seqs = await client.publish_many(prepare(agent, event) for agent, event in events)
    elapsed = time.perf_counter() - start
    assert len(seqs) == len(events)
    return elapsed


class GcClock:
    """Time spent in the cyclic garbage collector, per generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._start = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            self.collections[info["generation"]] += 1

    def take(self) -> tuple[float, list[int]]:
        out = (self.seconds, self.collections)
        self.seconds, self.collections = 0.0, [0, 0, 0]
        return out


def summary(n: int, seconds: list[float]) -> dict[str, object]:
    rates = [n / s for s in seconds]
    return {
        "best": round(max(rates)),
        "median": round(statistics.median(rates)),
        "runs": [round(r) for r in rates],
    }


async def profiled(fn: Callable[[], Awaitable[float]]) -> str:
    prof = cProfile.Profile()
    prof.enable()
    await fn()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(18)
    return text.getvalue()


async def bench(
    url: str, n: int, window: int, rounds: int, agents: int, profile: bool
) -> dict[str, object]:
    events = heartbeats(n, agents)
    encoded = [(f"agents.{agent}.heartbeat", codec.encode(event)) for agent, event in events]
    raw_nc = await nats.connect(url, name="bench-raw")
    client = await EventClient.connect(url, window=window, name="bench-sdk")
    try:
        await ensure_streams(client.js)
        warm = min(n, 5000)  # connections, inboxes and the stream's first blocks, untimed
        await raw_round(raw_nc, encoded[:warm], window)
        await sdk_round(client, events[:warm])
        raw: list[float] = []
        sdk: list[float] = []
        gc_time: dict[str, list[float]] = {"raw": [], "sdk": []}
        gc_runs: dict[str, list[int]] = {"raw": [0, 0, 0], "sdk": [0, 0, 0]}
        clock = GcClock()
        for r in range(rounds):
            first, second = ("raw", "sdk") if r % 2 == 0 else ("sdk", "raw")
            for side in (first, second):
                gc.collect()
                clock.take()
                if side == "raw":
                    raw.append(await raw_round(raw_nc, encoded, window))
                else:
                    sdk.append(await sdk_round(client, events))
                spent, runs = clock.take()
                gc_time[side].append(spent)
                gc_runs[side] = [a + b for a, b in zip(gc_runs[side], runs, strict=True)]
        if profile:
            print(await profiled(lambda: sdk_round(client, events)), file=sys.stderr)
            print(await profiled(lambda: raw_round(raw_nc, encoded, window)), file=sys.stderr)
    finally:
        await client.close()
        await raw_nc.drain()
    raw_s, sdk_s = summary(n, raw), summary(n, sdk)
    ratio_best = sdk_s["best"] / raw_s["best"]  # type: ignore[operator]
    ratio_median = sdk_s["median"] / raw_s["median"]  # type: ignore[operator]
    paired = statistics.median(
        r / s for r, s in zip(raw, sdk, strict=True)
    )  # same round, same conditions
    return {
        "benchmark": "ingest",
        "events": n,
        "window": window,
        "rounds": rounds,
        "payload_bytes": len(encoded[0][1]),
        "raw_events_per_s": raw_s,
        "sdk_events_per_s": sdk_s,
        "ratio_best": round(ratio_best, 3),
        "ratio_median": round(ratio_median, 3),
        "ratio_paired_median": round(paired, 3),
        "gc_seconds_per_round_median": {
            k: round(statistics.median(v), 3) for k, v in gc_time.items()
        },
        "gc_collections_by_generation": gc_runs,
        "target_ratio": TARGET_RATIO,
        "meets_target": paired >= TARGET_RATIO,
        "python": platform.python_version(),
        "nats_py": importlib.metadata.version("nats-py"),
    }


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--window", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--agents", type=int, default=200)
    p.add_argument(
        "--profile", action="store_true", help="cProfile one extra round of each (stderr)"
    )
    p.add_argument(
        "--durability", choices=["always", "interval"], default="always",
        help="the server's sync_interval, as the `durability` setting writes it (default always)",
    )
    args = p.parse_args()
    find_binary()
    with tempfile.TemporaryDirectory(prefix="agentledger-bench-") as tmp:
        config = Path(tmp) / "server.conf"
        config.write_text(with_durability(default_config().read_text(), args.durability))  # type: ignore[union-attr]
        with EmbeddedNats(port=free_port(), store_dir=Path(tmp) / "store", config=config) as server:
            result = asyncio.run(
                bench(server.url, args.events, args.window, args.rounds, args.agents, args.profile)
            )
    print(json.dumps({"durability": args.durability, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
