"""Read freshness on the default deployment: a heartbeat acked -> visible in `GET /api/agents/{id}`.

Starts `agentledger up` (ops/bench/deployment.py), then a background publisher (a process of its
own, so its pacing does not steal this loop's time) sends heartbeats of 200 agents at `--rate`
events/s. Meanwhile a probe agent publishes one heartbeat at a time with a new `round`, waits for
JetStream's ack, and polls its own agent over HTTP until that round shows. The latency is ack ->
first answer carrying it; the polling interval (`--poll-ms`) bounds the resolution. Next to it, in
the same run, the raw baseline: one GET of a row already visible (the floor an HTTP read costs).
Goal (issue 14): p50 <= 20 ms, p99 <= 100 ms under 5,000 events/s.

    python ops/bench/freshness.py [--rate 5000] [--samples 200] [--poll-ms 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import sys
import time
from typing import Any

import aiohttp
from deployment import Deployment, machine

from events.agents import AgentHeartbeat
from events.core.client import EventClient, prepare

GOALS = {"p50_ms_max": 20.0, "p99_ms_max": 100.0}
AGENTS = 200
TICK = 0.01


def background(url: str, credentials: str, rate: int, stop: Any, sent: Any) -> None:
    async def run() -> None:
        async with await EventClient.connect(url, credentials=credentials, window=4096) as c:
            per_tick, i = max(1, int(rate * TICK)), 0
            in_flight = asyncio.Semaphore(16)  # a tick's batch waits for its fsync: overlap them

            async def batch(base: int) -> None:
                async with in_flight:
                    await c.publish_many(prepare(f"bg-{(base + k) % AGENTS:03d}",
                                                 AgentHeartbeat(status="busy", round=(base + k) % 1000))
                                         for k in range(per_tick))
                    sent.value += per_tick

            tasks = set()
            next_tick = time.perf_counter()
            while not stop.is_set():
                await in_flight.acquire()  # behind by 16 ticks: do not queue without bound
                in_flight.release()
                task = asyncio.create_task(batch(i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += per_tick
                next_tick += TICK
                await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
            await asyncio.gather(*tasks)

    asyncio.run(run())


def percentiles(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(ms[max(0, int(len(ms) * 0.99) - 1)], 2), "max_ms": round(ms[-1], 2)}


async def probe(d: Deployment, samples: int, poll: float) -> tuple[list[float], list[float]]:
    url = d.http + "/api/agents/probe"
    fresh: list[float] = []
    floor: list[float] = []
    async with await d.connect() as c, aiohttp.ClientSession() as s:

        async def round_seen() -> int | None:
            async with s.get(url) as r:
                return (await r.json()).get("round") if r.status == 200 else None

        for n in range(samples + 1):
            await c.publish("probe", AgentHeartbeat(status="busy", round=n))
            acked = time.perf_counter()
            deadline = acked + 10.0
            while await round_seen() != n:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"heartbeat round {n} not visible within 10 s")
                await asyncio.sleep(poll)
            seen = time.perf_counter()
            if n:  # the first one waits for the agent's row to exist at all
                fresh.append((seen - acked) * 1000)
            t0 = time.perf_counter()
            await round_seen()
            floor.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(random.uniform(0.02, 0.05))  # not in step with the projector's batches
    return fresh, floor


async def main(args: argparse.Namespace) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    stop, sent = ctx.Event(), ctx.Value("q", 0)
    with Deployment() as d:
        bg = ctx.Process(target=background, args=(d.nats_url, str(d.credentials), args.rate, stop, sent), daemon=True)
        bg.start()
        try:
            await asyncio.sleep(2.0)  # the background rate settles before the first sample
            before, t0 = sent.value, time.perf_counter()
            fresh, floor = await probe(d, args.samples, args.poll_ms / 1000)
            achieved = (sent.value - before) / (time.perf_counter() - t0)
        finally:
            stop.set()
            bg.join(10)
        result = {"bench": "freshness", "deployment": "agentledger up", "machine": machine(),
                  "background_rate_asked": args.rate, "background_rate_achieved": round(achieved),
                  "poll_ms": args.poll_ms, "acked_to_visible": percentiles(fresh),
                  "baseline_http_get": percentiles(floor), "goals": GOALS}
    p = result["acked_to_visible"]
    result["ratio_p50_to_baseline"] = round(p["p50_ms"] / max(result["baseline_http_get"]["p50_ms"], 0.01), 1)
    result["met"] = {"p50": p["p50_ms"] <= GOALS["p50_ms_max"], "p99": p["p99_ms"] <= GOALS["p99_ms_max"],
                     "background_rate": achieved >= 0.9 * args.rate}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5000, help="background heartbeats per second")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--poll-ms", type=float, default=1.0)
    json.dump(asyncio.run(main(parser.parse_args())), sys.stdout, indent=2)
    print()
