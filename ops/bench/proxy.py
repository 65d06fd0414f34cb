"""Proxy benchmark: the same load direct to a mock upstream and through the gateway, in one run.

Starts its own nats-server (temp store, free port), a mock OpenAI upstream (a process of its own)
and the gateway (another process, as `agentledger serve gateway` would run it) with one backend
created by an event whose key a throwaway keyring encrypted. The load generator (this process)
sends non-streaming chat completions at a fixed concurrency: first straight to the upstream, then
through the gateway, in `--rounds` paired rounds. Prints one JSON object: per round RPS both ways
and their ratio and the p50 added latency at 4 concurrent connections, the medians of both over
the rounds, and whether the USAGE stream holds one event per request served.
Goals (issue 4): gateway RPS >= 0.25 x direct, p50 added latency <= 1 ms at 4 connections.

    python ops/bench/proxy.py [--requests 4000] [--concurrency 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from aiohttp import web

from events.core.client import EventClient
from events.core.keyring import Keyring
from events.core.streams import ensure_streams
from events.providers import BackendCreated, ModelMapping
from services.runtime.natsd import EmbeddedNats, free_port
from services.settings import Settings

GOALS = {"rps_ratio_min": 0.25, "p50_added_ms_max": 1.0}
WARM = 8
GATEWAY_KEY = "bench-gateway-key-0123456789"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}
ANSWER = {"id": "c", "object": "chat.completion", "created": 1, "model": "native",
          "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}


def run_upstream(port: int) -> None:
    payload = json.dumps(ANSWER).encode()

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=payload, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def run_gateway(settings_json: str) -> None:
    from services.gateway.app import serve
    from services.runtime import loop

    settings = Settings(**json.loads(settings_json))
    anyio.run(serve, settings, backend_options=loop.backend_options())  # as `agentledger serve gateway`


async def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url):
                    return  # any answer: it listens
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
            await asyncio.sleep(0.1)


async def load(url: str, headers: dict[str, str], requests: int, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    ok = 0
    remaining = WARM
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def worker() -> None:
            nonlocal remaining, ok
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                async with s.post(url, json=BODY, headers=headers) as r:
                    await r.read()
                    ok += r.status == 200
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*[worker() for _ in range(min(concurrency, 4))])  # warm the pool
        latencies.clear()
        warm_ok, ok, remaining = ok, 0, requests
        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        elapsed = time.perf_counter() - start
    ms = sorted(x * 1000 for x in latencies)
    return {"requests": len(ms), "ok": ok, "warm_ok": warm_ok, "rps": round(len(ms) / elapsed, 1),
            "p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 3)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        nats_server = EmbeddedNats(port=free_port(), store_dir=Path(tmp) / "nats")
        nats_server.start()
        up_port, gw_port = free_port(), free_port()
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=run_upstream, args=(up_port,), daemon=True)]
        try:
            raw = os.urandom(32)
            ring = Keyring({"k1": raw})
            async with await EventClient.connect(nats_server.url) as c:
                await ensure_streams(c.js)
                await c.append("bench", [BackendCreated(
                    backend_name="bench", api_base_url=f"http://127.0.0.1:{up_port}/v1",
                    api_key=ring.encrypt("sk-bench-upstream-key-0000", aad="bench"), rpm_limit=1_000_000,
                    model_mappings={"bench": ModelMapping(native_id="native")})], expected_seq=0)
            settings = {"nats_url": nats_server.url, "http_port": gw_port, "home": tmp,
                        "gateway_keys": GATEWAY_KEY, "keyring": "k1=" + base64.b64encode(raw).decode(),
                        "log_level": "WARNING"}
            procs.append(ctx.Process(target=run_gateway, args=(json.dumps(settings),), daemon=True))
            for p in procs:
                p.start()
            direct_url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
            gw_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
            await wait_http(f"http://127.0.0.1:{up_port}/v1/models")
            await wait_http(f"http://127.0.0.1:{gw_port}/health")
            auth = {"Authorization": f"Bearer {GATEWAY_KEY}"}
            rounds = []
            for _ in range(args.rounds):  # paired rounds: a noisy moment hits both sides of a pair
                row = {"direct": await load(direct_url, {}, args.requests, args.concurrency),
                       "gateway": await load(gw_url, auth, args.requests, args.concurrency),
                       "direct_c4": await load(direct_url, {}, args.requests // 2, 4),
                       "gateway_c4": await load(gw_url, auth, args.requests // 2, 4)}
                row["rps_ratio"] = round(row["gateway"]["rps"] / row["direct"]["rps"], 3)
                row["p50_added_ms_c4"] = round(row["gateway_c4"]["p50_ms"] - row["direct_c4"]["p50_ms"], 3)
                rounds.append(row)
            expected = sum(r[k]["ok"] + r[k]["warm_ok"] for r in rounds for k in ("gateway", "gateway_c4"))  # warm-ups count too
            async with await EventClient.connect(nats_server.url) as c:
                deadline = time.monotonic() + 30
                while True:
                    stored = (await c.js.stream_info("USAGE")).state.messages
                    if stored >= expected or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.1)
        finally:
            for p in procs:
                p.terminate()
                p.join(5)
            nats_server.stop()
    ratio = statistics.median(r["rps_ratio"] for r in rounds)
    added = statistics.median(r["p50_added_ms_c4"] for r in rounds)
    return {
        "bench": "proxy", "python": platform.python_version(), "cpus": os.cpu_count(),
        "concurrency": args.concurrency, "rounds": rounds,
        "rps_ratio": round(ratio, 3), "p50_added_ms_c4": round(added, 3), "statistic": "median over paired rounds",
        "usage_events": stored, "requests_served": expected, "usage_matches": stored == expected,
        "goals": GOALS,
        "met": {"rps_ratio": ratio >= GOALS["rps_ratio_min"], "p50_added": added <= GOALS["p50_added_ms_max"],
                "usage": stored == expected},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (direct then gateway); medians reported")
    result = asyncio.run(main(parser.parse_args()))
    json.dump(result, sys.stdout, indent=2)
    print()
