"""Rebuild benchmark: the agents projection rebuilt from JetStream vs. the raw decode limit.

Runs against the default deployment (`agentledger up`, ops/bench/deployment.py, durable acks; its
projector folds the heartbeats live meanwhile, as it would), publishes N heartbeats of 200 agents
pipelined through the SDK as the admin, then measures in the same run
  (a) raw: a nats-py ordered push consumer over the stream, msgspec-decoding each payload, nothing else;
  (b) rebuild: `services.projector.service.rebuild` of the agents projection into DuckDB, what
      `agentledger rebuild agents` runs (consumer, decode, fold, Arrow upserts, one transaction per
      batch, then the running projector is asked to swap);
and prints one JSON object with both rates (best of `--repeat` alternating runs), their ratio and
the peak RSS after each phase.
Goals (issue 14): rebuild >= 100,000 events/s and >= 0.8 x raw.

    python ops/bench/rebuild.py [--events 1000000] [--agents 200] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

import msgspec
import nats
from deployment import Deployment, machine
from nats.js.api import DeliverPolicy

from events.agents import AgentHeartbeat
from events.core.client import EventClient, login, prepare
from services.projector.service import rebuild
from services.settings import Settings

TARGET_RATE = 100_000
TARGET_RATIO = 0.8


async def publish(url: str, login: dict[str, str], events: int, agents: int) -> float:
    client = await EventClient.connect(url, window=4096, **login)
    try:
        start = time.perf_counter()
        chunk = 20_000
        statuses = ("idle", "busy")
        for base in range(0, events, chunk):
            await client.publish_many(
                prepare(f"agent-{i % agents:03d}", AgentHeartbeat(status=statuses[i % 2], round=i % 100,
                                                                 current_task=f"T-{i % 977}"))
                for i in range(base, min(events, base + chunk))
            )
        return events / (time.perf_counter() - start)
    finally:
        await client.close()


async def raw_decode(url: str, login: dict[str, str], events: int) -> float:
    nc = await nats.connect(url, **login)
    decoder = msgspec.json.Decoder(AgentHeartbeat)
    done = asyncio.Event()
    seen = 0

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        nonlocal seen
        decoder.decode(msg.data)
        seen += 1
        if seen == events:
            done.set()

    try:
        start = time.perf_counter()
        sub = await nc.jetstream().subscribe(
            "agents.>", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL, cb=on_msg,
            pending_msgs_limit=0, pending_bytes_limit=0,
        )
        await done.wait()
        rate = events / (time.perf_counter() - start)
        await sub.unsubscribe()
        return rate
    finally:
        await nc.close()


async def rebuild_rate(url: str, home: Path, events: int) -> tuple[float, dict]:
    settings = Settings(home=str(home), nats_url=url)
    start = time.perf_counter()
    result = await rebuild(settings, "agents")
    elapsed = time.perf_counter() - start
    assert result["checkpoints"]["AGENTS"] >= events, result
    return events / elapsed, result


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def bench(d: Deployment, events: int, agents: int, repeat: int) -> dict:
    """Raw and rebuild alternate `repeat` times; the best of each counts (others share the box)."""
    url, home, auth = d.nats_url, d.home, login(d.credentials)
    pub = await publish(url, auth, events, agents)
    rss = {"after_publish": peak_rss_mb()}
    raws, rebuilds = [], []
    for _ in range(repeat):
        raws.append(await raw_decode(url, auth, events))
        rss.setdefault("after_raw", peak_rss_mb())
        rebuilds.append((await rebuild_rate(url, home, events))[0])
        rss.setdefault("after_rebuild", peak_rss_mb())
    raw, rate = max(raws), max(rebuilds)
    return {
        "benchmark": "rebuild",
        "deployment": "agentledger up",
        "machine": machine(),
        "events": events,
        "agents": agents,
        "publish_events_per_s": round(pub),
        "raw_decode_events_per_s": round(raw),
        "rebuild_events_per_s": round(rate),
        "ratio": round(rate / raw, 3),
        "runs": {"raw": [round(r) for r in raws], "rebuild": [round(r) for r in rebuilds]},
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_mb_by_phase": rss,
        "targets": {"rebuild_events_per_s": TARGET_RATE, "ratio": TARGET_RATIO},
        "ok": rate >= TARGET_RATE and rate / raw >= TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of raw and rebuild")
    args = parser.parse_args(argv)
    with Deployment() as d:
        result = asyncio.run(bench(d, args.events, args.agents, args.repeat))
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
