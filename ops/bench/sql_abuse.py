"""SQL abuse benchmark: the issue's hostile queries, four at once, against a running projector
and gateway, while `GET /api/agents` is asked every few milliseconds.

Starts its own nats-server (temp store, free port), publishes heartbeats of `--agents` agents,
runs the projector host and the gateway in this process (as `agentledger up` does), warms it
up with two overlapping queries (so it keeps SQL workers ready), measures
`GET /api/agents` alone (the peer), then during each round of four ad-hoc queries sent together
to `POST /api/sql`:
  cross4: four `count(*)` over a cross join of two 1e11-row series (10 GB RSS each before);
  mixed:  one cross join, one SELECT of 60,000 columns (parse and bind ignored the timeout),
          one slow scan, one `force_checkpoint()` (a 500 before).
It prints one JSON object: per query its status, code and seconds (goal: within timeout + 1 s);
the service process's peak RSS (goal < 2 GB) and the SQL workers' summed peak; `/api/agents`
latencies alone and meanwhile (goal p99 < 100 ms) and their ratio.

    python ops/bench/sql_abuse.py [--timeout 10] [--agents 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from events.agents import AgentHeartbeat
from events.core.client import EventClient, prepare
from events.core.streams import ensure_streams
from services.gateway import app as gateway
from services.projector.service import ProjectorHost, connect
from services.runtime.natsd import EmbeddedNats, free_port
from services.settings import Settings

CROSS = "SELECT count(*) FROM generate_series(1, 100000000000) a, generate_series(1, 100000000000) b"
WIDE = "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(60_000))  # what fits in a 1 MiB body
SLOW = "SELECT sum(hash(range)) FROM range(100000000000)"
ROUNDS = {"cross4": [CROSS] * 4, "mixed": [CROSS, WIDE, SLOW, "SELECT * FROM force_checkpoint()"]}
GOAL_RSS_MB = 2048
GOAL_AGENTS_MS = 100.0


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def agents_latencies(http: aiohttp.ClientSession, base: str, stop: anyio.Event) -> list[float]:
    out = []
    while not stop.is_set():
        t = time.perf_counter()
        async with http.get(f"{base}/api/agents") as r:
            await r.read()
            assert r.status == 200, r.status
        out.append((time.perf_counter() - t) * 1000)
        await anyio.sleep(0.02)
    return out


async def one_query(http: aiohttp.ClientSession, base: str, sql: str) -> dict[str, Any]:
    t = time.perf_counter()
    async with http.post(f"{base}/api/sql", json={"projection": "agents", "sql": sql}) as r:
        body = await r.json()
    code = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
    return {"sql": sql[:60], "status": r.status, "code": code, "seconds": round(time.perf_counter() - t, 2)}


def summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms) or [0.0]
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "max_ms": round(ms[-1], 2)}


async def abuse(http: aiohttp.ClientSession, base: str, host: ProjectorHost, queries: list[str]) -> dict[str, Any]:
    stop, workers_peak = anyio.Event(), 0.0
    latencies: list[float] = []
    answers: list[dict[str, Any]] = []

    async def sample() -> None:
        nonlocal workers_peak
        while not stop.is_set():
            running = host.adhoc.running if host.adhoc else set()
            workers_peak = max(workers_peak, sum(rss_mb(pid) for pid in list(running)))
            await anyio.sleep(0.05)

    async def agents() -> None:
        latencies.extend(await agents_latencies(http, base, stop))

    async def ask(sql: str) -> None:
        answers.append(await one_query(http, base, sql))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sample)
        tg.start_soon(agents)
        async with anyio.create_task_group() as asks:
            for sql in queries:
                asks.start_soon(ask, sql)
        stop.set()
    return {"queries": answers, "agents_meanwhile": summary(latencies), "workers_peak_rss_mb": round(workers_peak)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(port=free_port(), store_dir=Path(tmp) / "nats")
        server.start()
        try:
            settings = Settings(nats_url=server.url, home=str(Path(tmp) / "home"), http_port=free_port(),
                                query_timeout_s=args.timeout, log_level="ERROR")
            client = await EventClient.connect(server.url)
            await ensure_streams(client.js)
            await client.publish_many(prepare(f"agent-{i:03d}", AgentHeartbeat(status="idle", round=i))
                                      for i in range(args.agents))
            await client.close()
            nc = await connect(settings, "bench-projector")
            host = ProjectorHost(settings, nc, ["agents"])
            async with anyio.create_task_group() as tg, aiohttp.ClientSession() as http:
                await tg.start(host.run)
                await tg.start(gateway.serve, settings)
                base = settings.http_url
                stop = anyio.Event()
                quiet: list[float] = []

                async def baseline() -> None:
                    quiet.extend(await agents_latencies(http, base, stop))

                async with anyio.create_task_group() as alone:
                    alone.start_soon(baseline)
                    await anyio.sleep(3)
                    stop.set()
                async with anyio.create_task_group() as warm:  # overlapping queries: workers kept ready
                    for _ in range(2):
                        warm.start_soon(one_query, http, base, "SELECT 1")
                await anyio.sleep(2)
                rounds = {name: await abuse(http, base, host, qs) for name, qs in ROUNDS.items()}
                tg.cancel_scope.cancel()
            await nc.close()
        finally:
            server.stop()
    worst = max(q["seconds"] for r in rounds.values() for q in r["queries"])
    meanwhile = max(r["agents_meanwhile"]["p99_ms"] for r in rounds.values())
    alone_s = summary(quiet)
    return {
        "timeout_s": args.timeout, "rounds": rounds, "agents_alone": alone_s,
        "agents_p99_ratio_meanwhile_vs_alone": round(meanwhile / max(alone_s["p99_ms"], 0.01), 2),
        "slowest_query_s": worst, "goal_query_s": args.timeout + 1, "query_goal_met": worst <= args.timeout + 1,
        "service_peak_rss_mb": round(rss_mb("self", "VmHWM")), "goal_rss_mb": GOAL_RSS_MB,
        "agents_goal_met": meanwhile < GOAL_AGENTS_MS, "errors_5xx_other_than_503_504": sum(
            1 for r in rounds.values() for q in r["queries"] if q["status"] >= 500 and q["status"] not in (503, 504)),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--agents", type=int, default=200)
    result = asyncio.run(main(parser.parse_args()))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
