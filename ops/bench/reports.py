"""Notifier benchmark: N reports to three local webhook targets, one failing half its requests.

The targets run in a process of their own (aiohttp) and log every request with the answer they
gave. Reports are filed first (pipelined), then the notifier drains the queues; the run reports:

- deliveries/s to the two healthy targets (goal >= 1,000) and the flaky one's rate;
- per-target order violations: 2xx answers out of filing order (must be 0);
- reports recorded `delivered` without a 2xx from that target (must be 0);
- duplicates after a recorded success: a second 2xx for the same report and target (must be 0).

    .venv/bin/python ops/bench/reports.py [--reports 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import multiprocessing
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import nats
from aiohttp import web

from events import reports
from events.core import reader
from events.core.client import EventClient, prepare
from events.core.keyring import Keyring, new_key
from events.core.streams import ensure_streams
from events.reports import Policy, ReportFiled
from services import targets
from services.notifier import Notifier
from services.runtime import loop
from services.runtime.natsd import EmbeddedNats, default_config, find_binary, free_port

HEALTHY = ("alpha", "beta")
FLAKY = "gamma"


def serve_targets(port: int) -> None:
    """The three targets; `gamma` answers 500 and 429 (Retry-After: 0) to every other request."""
    log: list[tuple[str, str, int]] = []
    count: Counter[str] = Counter()

    async def hook(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.json()
        count[name] += 1
        status = 202
        if name == FLAKY and count[name] % 2:
            status = 500 if count[name] % 4 == 1 else 429
        log.append((name, body["report_id"], status))
        headers = {"Retry-After": "0"} if status == 429 else None
        return web.Response(status=status, headers=headers)

    async def get_log(_: web.Request) -> web.Response:
        return web.json_response(log)

    app = web.Application()
    app.add_routes([web.post("/hook/{name}", hook), web.get("/log", get_log)])
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def bench(url: str, n: int, port: int) -> dict[str, Any]:
    ring = Keyring({"k1": new_key()})
    client = await EventClient.connect(url)
    await ensure_streams(client.js)
    names = [*HEALTHY, FLAKY]
    for name in names:
        cmd = targets.created(ring, name, {"kind": "webhook", "url": f"http://127.0.0.1:{port}/hook/{name}"})
        await targets.execute(client, name, lambda _, c=cmd: c)
    ids = [f"r{i:07d}" for i in range(n)]
    await client.publish_many(prepare(i, ReportFiled(task_id=i, progress="1%", targets=names)) for i in ids)
    fold_nc = await nats.connect(url)  # as `serve`: the fold's deliveries never queue ahead of our acks
    notifier = Notifier(client.nc, keyring=ring, timeout_s=5.0, fold_nc=fold_nc,
                        policy=Policy(base_s=0.001, max_s=0.01, jitter=0.2, max_attempts=1_000_000))
    done: dict[str, float] = {}
    started = time.perf_counter()

    async def watch() -> None:
        while len(done) < len(names):
            for name in names:
                if name not in done and notifier.fold.board.head(name) is None and notifier.fold.board.reports:
                    done[name] = time.perf_counter() - started
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(notifier.run)
        await watch()
        tg.cancel_scope.cancel()
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/log") as r:
        log = await r.json()
    states = await reader.fold(client.js, "reports", reports.initial_state, reports.evolve)
    recorded = {(r, t) for r, (state, _) in states.items() for t, d in state.deliveries.items()
                if d.status == "delivered"}
    await fold_nc.close()
    await client.close()
    return verdict(log, recorded, ids, done, n)


def verdict(log: list[list[Any]], recorded: set[tuple[str, str]], ids: list[str], done: dict[str, float],
            n: int) -> dict[str, Any]:
    order = {r: i for i, r in enumerate(ids)}
    ok: dict[str, list[str]] = defaultdict(list)
    for name, report_id, status in log:
        if 200 <= status < 300:
            ok[name].append(report_id)
    violations = {name: sum(1 for a, b in itertools.pairwise(got) if order[b] < order[a])
                  for name, got in ok.items()}
    answered = {(r, name) for name, got in ok.items() for r in got}
    duplicates = sum(c - 1 for c in Counter((r, name) for name, got in ok.items() for r in got).values())
    healthy_s = max(done[h] for h in HEALTHY)
    return {
        "reports": n,
        "healthy_deliveries_per_s": round(len(HEALTHY) * n / healthy_s, 1),
        "healthy_seconds": round(healthy_s, 3),
        "flaky_deliveries_per_s": round(n / done[FLAKY], 1),
        "flaky_requests": sum(1 for name, _, _ in log if name == FLAKY),
        "order_violations": violations,
        "delivered_without_2xx": len(recorded - answered),
        "duplicates_after_success": duplicates,
        "recorded_deliveries": len(recorded),
        "goal_deliveries_per_s": 1000,
    }


async def wait_ready(port: int) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(500):
            try:
                async with http.get(f"http://127.0.0.1:{port}/log"):
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.02)
    raise RuntimeError(f"the targets process does not answer on port {port}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reports", type=int, default=10_000)
    args = p.parse_args()
    find_binary()
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=serve_targets, args=(port,), daemon=True)
    server.start()
    logging.basicConfig(level=logging.ERROR)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="agentledger-bench-") as tmp,
            EmbeddedNats(port=free_port(), store_dir=Path(tmp) / "store", config=default_config()) as nats,
        ):
            anyio.run(wait_ready, port, backend_options=loop.backend_options())
            result = anyio.run(bench, nats.url, args.reports, port, backend_options=loop.backend_options())
    finally:
        server.terminate()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
