"""Command benchmark: 50 agents doing claim/start/progress/submit cycles through `cmd.tasks.*`.

Runs against the default deployment: `agentledger up` (ops/bench/deployment.py: the tasks service
and the gateway are its own `agentledger serve` processes, durable acks), connecting as the admin.
Creates one task per agent and cycle, then lets every agent run its cycles concurrently from a
child process. Next to it, in the same run and with the same concurrency, the raw NATS
request/reply round trip against an echo responder in this process: the limit a command cannot
beat. Prints one JSON object: commands/s, p50/p99 latency, and the ratios. The same saturated load
also goes through the gateway (`POST /api/tasks/{id}/<verb>`, admin token), so the HTTP cost shows
next to NATS.
Goals (issue 14): paced at 2,000 commands/s p50 <= 3 ms, p99 <= 10 ms; saturated >= 5,000/s over NATS.

    python ops/bench/claims.py [--agents 50] [--cycles 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import aiohttp
import anyio
import msgspec
import nats
from deployment import ADMIN_TOKEN, Deployment, machine
from nats.aio.client import Client as NATS

from events.core.client import login
from services.runtime.loop import backend_options

GOALS = {"commands_per_s": 5000, "p50_ms": 3.0, "p99_ms": 10.0}
AS_ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CYCLE = ("claim", "start", "progress", "submit")


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "requests": len(ms),
        "per_s": round(len(ms) / elapsed, 1),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "max_ms": round(ms[-1], 3),
    }


async def request(nc: NATS, subject: str, body: bytes, lat: list[float]) -> dict[str, Any]:
    t0 = time.perf_counter()
    msg = await nc.request(subject, body, timeout=10)
    lat.append(time.perf_counter() - t0)
    return msgspec.json.decode(msg.data)  # type: ignore[no-any-return]


async def agents_run(
    conns: list[NATS], cycles: int, tag: str, interval: float = 0.0
) -> tuple[list[float], float, int]:
    """Every agent runs its cycles; with `interval`, one command per agent every `interval` s
    (open loop: a late reply does not push the schedule back), otherwise as fast as replies come."""
    lat: list[float] = []
    failed = 0
    start = time.perf_counter()

    async def agent(i: int) -> None:
        nonlocal failed
        me = f"agent-{i:03d}"
        n = 0
        if interval:
            await asyncio.sleep(interval * i / len(conns))  # spread the agents over one interval
        for c in range(cycles):
            task = f"B-{tag}-{i:03d}-{c:04d}"
            for verb in CYCLE:
                body = {"task_id": task, "agent_id": me}
                if verb == "progress":
                    body["progress"] = 50
                if interval:
                    n += 1
                    if (wait := start + interval * (n + i / len(conns)) - time.perf_counter()) > 0:
                        await asyncio.sleep(wait)
                reply = await request(conns[i], f"cmd.tasks.{verb}", msgspec.json.encode(body), lat)
                if not reply["ok"]:
                    failed += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(agent(i) for i in range(len(conns))))
    return lat, time.perf_counter() - t0, failed


async def echo_run(conns: list[NATS], per_agent: int, interval: float = 0.0) -> tuple[list[float], float]:
    lat: list[float] = []
    body = msgspec.json.encode({"task_id": "B-echo-000", "agent_id": "agent-000"})
    start = time.perf_counter()

    async def agent(i: int) -> None:
        for n in range(per_agent):
            if interval and (wait := start + interval * (n + i / len(conns)) - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            t0 = time.perf_counter()
            await conns[i].request("bench.echo", body, timeout=10)
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(agent(i) for i in range(len(conns))))
    return lat, time.perf_counter() - t0


async def http_run(base: str, agents: int, cycles: int, tag: str) -> tuple[list[float], float, int]:
    """The same cycles through the gateway, one keep-alive HTTP connection per agent."""
    lat: list[float] = []
    failed = 0

    async def agent(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal failed
        me = f"agent-{i:03d}"
        for c in range(cycles):
            task = f"B-{tag}-{i:03d}-{c:04d}"
            for verb in CYCLE:
                body: dict[str, Any] = {"agent_id": me}
                if verb == "progress":
                    body["progress"] = 50
                t0 = time.perf_counter()
                async with session.post(f"{base}/api/tasks/{task}/{verb}", json=body, headers=AS_ADMIN) as r:
                    await r.read()
                lat.append(time.perf_counter() - t0)
                if r.status >= 300:
                    failed += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=agents)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(agent(session, i) for i in range(agents)))
        return lat, time.perf_counter() - t0, failed


def http_process(base: str, agents: int, cycles: int, tag: str) -> tuple[list[float], float, int]:
    return asyncio.run(http_run(base, agents, cycles, tag))


def agents_process(url: str, auth: dict[str, str], agents: int, connections: int, cycles: int, tag: str,
                   interval: float, echo: bool) -> tuple[list[float], float, int]:
    """The load generator, in a process of its own so that it does not share the service's CPU.

    Agent i uses connection i % `connections`: in production every agent is a process elsewhere;
    here a few shared connections keep the generator's own CPU (a syscall per message per
    connection) from starving the service on a 2-core machine.
    """

    async def go() -> tuple[list[float], float, int]:
        own = [await nats.connect(url, **auth) for _ in range(connections)]
        conns = [own[i % connections] for i in range(agents)]
        try:
            if echo:
                lat, elapsed = await echo_run(conns, cycles * len(CYCLE), interval)
                return lat, elapsed, 0
            return await agents_run(conns, cycles, tag, interval)
        finally:
            await asyncio.gather(*(c.close() for c in own))

    return asyncio.run(go())


async def create_tasks(nc: NATS, agents: int, cycles: int, tag: str) -> None:
    sem = asyncio.Semaphore(64)

    async def one(i: int, c: int) -> None:
        async with sem:
            body = {"task_id": f"B-{tag}-{i:03d}-{c:04d}", "title": f"bench {i} {c}"}
            reply = msgspec.json.decode((await nc.request("cmd.tasks.create", msgspec.json.encode(body), timeout=10)).data)
            if not reply["ok"]:
                raise RuntimeError(f"create failed: {reply}")

    await asyncio.gather(*(one(i, c) for i in range(agents) for c in range(cycles)))


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with Deployment() as d:
        return await _with_deployment(d, args)


async def _with_deployment(d: Deployment, args: argparse.Namespace) -> dict[str, Any]:
    url, auth = d.nats_url, login(d.credentials)
    admin = await nats.connect(url, **auth)

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    echo_nc = await nats.connect(url, **auth)
    await echo_nc.subscribe("bench.echo", cb=echo)
    await echo_nc.flush()
    rounds: list[dict[str, Any]] = []
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    loop = asyncio.get_running_loop()
    interval = args.agents / args.rate  # one command per agent every `interval` s -> `rate` in all

    async def load(cycles: int, tag: str, paced: bool, echo: bool) -> tuple[list[float], float, int]:
        return await loop.run_in_executor(
            pool, agents_process, url, auth, args.agents, args.connections, cycles, tag, interval if paced else 0.0, echo)

    await create_tasks(admin, args.agents, 2, "warm")  # warm up both paths and the pool
    await load(2, "warm", False, False)
    await load(2, "warm", False, True)
    for r in range(args.rounds):
        row: dict[str, Any] = {}
        for paced in (False, True):
            tag = f"r{r}{'p' if paced else 's'}"
            await create_tasks(admin, args.agents, args.cycles, tag)
            gc.collect()
            echo_lat, echo_s, _ = await load(args.cycles, tag, paced, True)
            lat, elapsed, failed = await load(args.cycles, tag, paced, False)
            row["paced" if paced else "saturated"] = {
                "nats": {**summary(lat, elapsed), "failed": failed},
                "raw_request_reply": summary(echo_lat, echo_s),
            }
        tag = f"r{r}h"
        await create_tasks(admin, args.agents, args.cycles, tag)
        lat, elapsed, failed = await loop.run_in_executor(
            pool, http_process, d.http, args.agents, args.cycles, tag)
        row["saturated"]["http"] = {**summary(lat, elapsed), "failed": failed}
        rounds.append(row)
    pool.shutdown()
    for c in (echo_nc, admin):
        with contextlib.suppress(Exception):
            await c.close()
    sat = {path: _median(rounds, "saturated", path) for path in _PATHS}
    paced = {path: _median(rounds, "paced", path) for path in ("nats", "raw_request_reply")}
    return {
        "benchmark": "claims",
        "agents": args.agents,
        "agent_connections": args.connections,
        "cycles_per_agent": args.cycles,
        "commands_per_round": args.agents * args.cycles * len(CYCLE),
        "paced_rate_per_s": args.rate,
        "how": "saturated: every agent sends its next command when the reply came (throughput); "
               f"paced: {args.rate}/s in all, one command per agent every {interval * 1000:.0f} ms "
               f"(latency at the goal's rate); agents run in a child process over {args.connections} NATS connections; "
               "raw_request_reply: the same load against an echo responder in the bench's process",
        "deployment": "agentledger up",
        "rounds": rounds,
        "median_of_rounds": {
            "saturated": {**sat, "throughput_ratio_vs_raw": round(sat["nats"]["per_s"] / sat["raw_request_reply"]["per_s"], 3)},
            "paced": {**paced, "p50_ratio_vs_raw": round(paced["nats"]["p50_ms"] / paced["raw_request_reply"]["p50_ms"], 2)},
        },
        "goals": GOALS,
        "goals_met": {
            "commands_per_s": sat["nats"]["per_s"] >= GOALS["commands_per_s"],
            "p50_ms": paced["nats"]["p50_ms"] <= GOALS["p50_ms"],
            "p99_ms": paced["nats"]["p99_ms"] <= GOALS["p99_ms"],
        },
        "machine": machine(),
    }


_PATHS = ("nats", "raw_request_reply", "http")
_STATS = ("per_s", "p50_ms", "p99_ms", "max_ms")


def _median(rounds: list[dict[str, Any]], load: str, path: str) -> dict[str, float]:
    """Each statistic's median over the rounds, on its own (a noisy round moves none of them far)."""
    return {k: statistics.median(r[load][path][k] for r in rounds) for k in _STATS}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--cycles", type=int, default=20, help="claim/start/progress/submit cycles per agent and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=5, help="NATS connections the agents share")
    p.add_argument("--rate", type=float, default=2000.0, help="commands/s in all for the paced runs")
    args = p.parse_args()
    print(json.dumps(anyio.run(bench, args, backend_options=backend_options()), indent=2))  # as `agentledger up`
    return 0


if __name__ == "__main__":
    sys.exit(main())
