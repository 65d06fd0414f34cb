"""The embedded nats-server is restarted, not mourned: same port, same store, and under proxy
load every request answered 200 has exactly one usage event once NATS is back."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from events.agents import AgentHeartbeat
from events.core.client import EventClient
from events.core.streams import ensure_streams
from services import up
from services.runtime import credentials
from services.runtime.natsd import EmbeddedNats, free_port
from services.runtime.supervise import Restarts, keep_running
from services.settings import load
from tests.polling import eventually
from tests.services.gateway.proxy.fixtures import (
    GATEWAY_KEY,
    KEYRING,
    create_backend,
    start_upstream,
)
from tests.services.test_up import nats_servers_using

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find the nats-server")
CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}


async def test_a_killed_server_is_restarted_on_the_same_port_with_its_store(tmp_path: Path) -> None:
    server = EmbeddedNats(port=free_port(), store_dir=tmp_path / "nats")
    await anyio.to_thread.run_sync(server.start)
    restarts = Restarts()
    try:
        async with await EventClient.connect(server.url) as client:
            await ensure_streams(client.js)
            await client.publish("architect", AgentHeartbeat(status="busy"))
            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_running, server, restarts)
                killed = server.proc.pid  # type: ignore[union-attr]
                os.kill(killed, signal.SIGKILL)
                await eventually(lambda: restarts.count == 1, 30, "nats-server restarted")
                assert server.proc is not None and server.proc.pid != killed
                assert restarts.last_reason == f"nats-server (pid {killed}) was killed by SIGKILL"

                async def published() -> bool:
                    try:
                        await client.publish("architect", AgentHeartbeat(status="idle"))
                    except Exception:  # noqa: BLE001  (still reconnecting)
                        return False
                    return True

                await eventually(published, 30, "the client reconnects and publishes")
                assert (await client.js.stream_info("AGENTS")).state.messages == 2  # the store survived
                tg.cancel_scope.cancel()
    finally:
        await anyio.to_thread.run_sync(server.stop)


async def usage_events(url: str) -> list[dict[str, Any]]:
    """Every usage event in the USAGE stream, as stored."""
    async with await EventClient.connect(url) as client:
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, mem_storage=True)
        sub = await client.js.pull_subscribe("usage.>", stream="USAGE", config=config)
        pending = (await sub.consumer_info()).num_pending
        out = []
        while len(out) < pending:
            out += [msgspec.json.decode(m.data) for m in await sub.fetch(min(500, pending - len(out)), timeout=5)]
        await sub.unsubscribe()
        return out


async def test_sigkill_of_nats_under_proxy_load_loses_no_usage_event_and_doubles_none(tmp_path: Path) -> None:
    home = tmp_path / "home"
    upstream = await start_upstream("a")
    settings = load(env={}, home=str(home), http_port=free_port(), nats_port=0, snapshot_interval_s=1.0,
                    gateway_keys=GATEWAY_KEY, keyring=KEYRING.to_env_value(), request_timeout_s=2.0)
    answered: Counter[int] = Counter()
    async with anyio.create_task_group() as tg:
        running: up.Running = await tg.start(lambda task_status: up.run(settings, task_status=task_status))
        admin_url = credentials.with_user(running.nats_url, credentials.load(home, "admin"))
        async with await EventClient.connect(admin_url) as client:
            await create_backend(client, "bkd_a", upstream.url, rpm=1_000_000)
        stop = anyio.Event()
        headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
        url = f"{running.http_url}/v1/chat/completions"

        async with aiohttp.ClientSession() as http:

            async def routable() -> bool:
                async with http.post(url, json=CHAT, headers=headers) as r:
                    await r.read()
                    if r.status == 200:
                        answered[200] += 1
                    return r.status == 200

            await eventually(routable, 30, "the proxy routes to bkd_a")

            async def client_loop() -> None:
                while not stop.is_set():
                    async with http.post(url, json=CHAT, headers=headers) as r:
                        await r.read()
                        answered[r.status] += 1

            async with anyio.create_task_group() as clients:
                for _ in range(6):
                    clients.start_soon(client_loop)
                await eventually(lambda: answered[200] >= 200, 60, "load before the kill")
                [pid] = nats_servers_using(home / "nats")
                os.kill(pid, signal.SIGKILL)
                before = answered[200]
                await eventually(lambda: nats_servers_using(home / "nats") not in ([], [pid]), 60,
                                 "up restarts nats-server")
                await eventually(lambda: answered[200] >= before + 300, 60, "load through the restart")
                stop.set()

        async def all_landed() -> list[dict[str, Any]] | bool:
            await anyio.sleep(0.5)  # each look reads the whole stream
            try:
                events = await usage_events(admin_url)
            except Exception:  # noqa: BLE001  (JetStream still recovering)
                return False
            return len([e for e in events if e.get("status") == 200]) >= answered[200] and events

        events = await eventually(all_landed, 60, "every answered request's usage event is stored")
        ok = [e for e in events if e.get("status") == 200]
        assert len(ok) == answered[200], (len(ok), answered)
        ids = Counter(e["request_id"] for e in events)
        assert ids and max(ids.values()) == 1  # one attempt per request: no event stored twice
        assert set(answered) == {200}, answered  # the proxy answered throughout the outage

        async with await EventClient.connect(admin_url) as client:  # the rest came back too
            await client.publish("after-restart", AgentHeartbeat(status="busy"))
        async with aiohttp.ClientSession() as http:

            async def projected() -> bool:
                async with http.get(f"{running.http_url}/api/agents") as r:
                    return r.status == 200 and "after-restart" in await r.text()

            await eventually(projected, 60, "the projector follows the restarted server")
        tg.cancel_scope.cancel()
    assert upstream.server is not None
    await upstream.server.close()
