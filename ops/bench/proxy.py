"""Proxy benchmark on the default deployment: the same load direct to a mock upstream and through it.

Starts `agentledger up` (ops/bench/deployment.py: every service its own process, durable acks),
a mock OpenAI upstream in a process of its own, and one backend created through the admin API.
The load generator is `wrk` (C; Debian package `wrk`) so the direct side is not capped by a Python
client; without it a Python client runs instead and a warning says the ratio then flatters the
gateway. Paired rounds (direct then gateway, at 32 and at 4 connections); medians reported.
Usage events are checked against the requests the gateway itself counted as served (wrk drops the
responses in flight when it stops, the gateway does not).
Goals (issue 14): RPS ratio >= 0.4 at 32 connections, added p50 <= 1 ms and p99 <= 3 ms at 4.

    python ops/bench/proxy.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from deployment import GATEWAY_KEY, Deployment, machine

from services.runtime.natsd import free_port

GOALS = {"rps_ratio_min": 0.4, "p50_added_ms_max": 1.0, "p99_added_ms_max": 3.0}
BODY = {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}
ANSWER = {"id": "c", "object": "chat.completion", "created": 1, "model": "native",
          "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_upstream(port: int) -> None:
    payload = json.dumps(ANSWER).encode()

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=payload, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def wrk_script(folder: Path, auth: bool) -> Path:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {GATEWAY_KEY}"} if auth else {})
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(BODY))}"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    path = folder / ("gateway.lua" if auth else "direct.lua")
    path.write_text("\n".join(lines) + "\n")
    return path


def ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if m is None:
        raise ValueError(f"wrk printed a latency it cannot parse: {text!r}")
    return float(m[1]) * UNITS[m[2]]


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{int(seconds)}s",
                          "--latency", "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    done = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.MULTILINE)
    if done is None or "50" not in lat:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    return {"requests": int(done[1]), "non_2xx": int(bad[1]) if bad else 0,
            "socket_errors": errors[1] if errors else None,
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
            "p50_ms": ms(lat["50"]), "p99_ms": ms(lat["99"])}


async def python_load(url: str, headers: dict[str, str], connections: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    bad = 0
    stop = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as s:

        async def worker() -> None:
            nonlocal bad
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with s.post(url, json=BODY, headers=headers) as r:
                    await r.read()
                    bad += r.status != 200
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(connections)])
        elapsed = time.perf_counter() - start
    lat = sorted(x * 1000 for x in latencies)
    return {"requests": len(lat), "non_2xx": bad, "rps": round(len(lat) / elapsed, 1),
            "p50_ms": round(statistics.median(lat), 3), "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 3)}


def served(http: str) -> int:
    """What the gateway answered 200 to, by its own counter: the ground truth for usage events."""
    with urllib.request.urlopen(http + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return int(sum(float(v) for v in re.findall(r'^agentledger_proxy_requests_total\{[^}]*code="200"[^}]*\} (\S+)$',
                                               text, re.MULTILINE)))


async def usage_events(d: Deployment, expected: int, timeout: float = 30.0) -> int:
    async with await d.connect() as c:
        deadline = time.monotonic() + timeout
        while True:
            stored = (await c.js.stream_info("USAGE")).state.messages
            if stored >= expected or time.monotonic() > deadline:
                return int(stored)
            await asyncio.sleep(0.2)


def wait_200(url: str, timeout: float = 30.0) -> None:
    req = urllib.request.Request(url, data=json.dumps(BODY).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {GATEWAY_KEY}", "Content-Type": "application/json"})
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(req, timeout=5):
                return
        except OSError as exc:  # URLError/HTTPError too: the backend not folded yet, the upstream not up yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s: {exc}") from exc
            time.sleep(0.2)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    if not use_wrk:
        print("WARNING: wrk not found (apt-get install wrk): the Python client caps the direct side, "
              "so the ratio flatters the gateway", file=sys.stderr)
    up_port = free_port()
    upstream = multiprocessing.get_context("spawn").Process(target=run_upstream, args=(up_port,), daemon=True)
    upstream.start()
    try:
        with Deployment() as d, tempfile.TemporaryDirectory() as tmp:
            d.admin("POST", "/api/admin/backends", {
                "name": "bench", "api_base_url": f"http://127.0.0.1:{up_port}/v1",
                "api_key": "sk-bench-upstream-key-0000", "rpm_limit": 1_000_000,
                "model_mappings": {"bench": {"native_id": "native"}}})
            direct, gateway = f"http://127.0.0.1:{up_port}/v1/chat/completions", d.http + "/v1/chat/completions"
            wait_200(direct)
            wait_200(gateway)
            scripts = {direct: wrk_script(Path(tmp), False), gateway: wrk_script(Path(tmp), True)}

            async def drive(url: str, connections: int) -> dict[str, Any]:
                if use_wrk:
                    return await asyncio.to_thread(run_wrk, url, scripts[url], connections, args.seconds)
                headers = {"Authorization": f"Bearer {GATEWAY_KEY}"} if url == gateway else {}
                return await python_load(url, headers, connections, args.seconds)

            rounds = []
            for _ in range(args.rounds):  # paired: a noisy moment on the shared machine hits both sides
                row = {"direct_c32": await drive(direct, 32), "gateway_c32": await drive(gateway, 32),
                       "direct_c4": await drive(direct, 4), "gateway_c4": await drive(gateway, 4)}
                row["rps_ratio_c32"] = round(row["gateway_c32"]["rps"] / row["direct_c32"]["rps"], 3)
                row["p50_added_ms_c4"] = round(row["gateway_c4"]["p50_ms"] - row["direct_c4"]["p50_ms"], 3)
                row["p99_added_ms_c4"] = round(row["gateway_c4"]["p99_ms"] - row["direct_c4"]["p99_ms"], 3)
                rounds.append(row)
            answered = served(d.http)
            stored = await usage_events(d, answered)
    finally:
        upstream.terminate()
        upstream.join(5)
    ratio = statistics.median(r["rps_ratio_c32"] for r in rounds)
    p50 = statistics.median(r["p50_added_ms_c4"] for r in rounds)
    p99 = statistics.median(r["p99_added_ms_c4"] for r in rounds)
    return {
        "bench": "proxy", "deployment": "agentledger up", "load_generator": "wrk" if use_wrk else "python (aiohttp)",
        "machine": machine(), "seconds_per_run": args.seconds, "rounds": rounds,
        "rps_ratio_c32": round(ratio, 3), "p50_added_ms_c4": round(p50, 3), "p99_added_ms_c4": round(p99, 3),
        "statistic": "median over paired rounds",
        "usage_events": stored, "requests_served": answered, "usage_matches": stored == answered,
        "goals": GOALS,
        "met": {"rps_ratio": ratio >= GOALS["rps_ratio_min"], "p50_added": p50 <= GOALS["p50_added_ms_max"],
                "p99_added": p99 <= GOALS["p99_added_ms_max"], "usage": stored == answered},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (direct then gateway); medians reported")
    parser.add_argument("--python-client", action="store_true", help="use the Python client even if wrk is installed")
    result = asyncio.run(main(parser.parse_args()))
    json.dump(result, sys.stdout, indent=2)
    print()
