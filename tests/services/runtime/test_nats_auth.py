"""The permission matrix over NATS, against a real nats-server running the generated config.

Each principal connects with the credentials `up` made in its home; each row publishes (or
subscribes) and must be allowed (a JetStream ack, or no violation) or refused (the server's
permissions violation), both ways, so what must work is proven to work too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from events.core.client import EventClient
from events.core.inbox import inbox_for
from events.core.streams import ensure_streams
from services import up
from services.runtime import credentials
from services.runtime.lease import ensure_bucket
from services.runtime.natsd import EmbeddedNats, free_port
from services.settings import Settings

HB = b'{"status":"busy"}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedNats, Path]]:
    home = tmp_path_factory.mktemp("authhome")
    credentials.issue(home, "agent:architect")
    settings = Settings(home=str(home), nats_port=free_port())
    srv = up.embedded_server(settings)
    srv.start()
    yield srv, home
    srv.stop()


class Conn:
    def __init__(self, nc: NATS, errors: list[str]) -> None:
        self.nc, self.errors = nc, errors

    async def refused(self, subject: str, *, subscribe: bool = False) -> bool:
        """True when the server answers a permissions violation for this publish/subscription."""
        self.errors.clear()
        if subscribe:
            sub = await self.nc.subscribe(subject)
        else:
            await self.nc.publish(subject, HB)
        await self.nc.flush()
        for _ in range(50):
            if any(subject.lower() in e.lower() for e in self.errors):
                return True
            await asyncio.sleep(0.01)
        if subscribe:
            await sub.unsubscribe()
        return False

    async def stored(self, subject: str) -> bool:
        ack = await self.nc.jetstream().publish(subject, HB, timeout=5)
        return ack.seq > 0


@pytest.fixture
async def connect(server: tuple[EmbeddedNats, Path]) -> AsyncIterator:  # type: ignore[type-arg]
    srv, home = server
    opened: list[NATS] = []

    async def as_(name: str) -> Conn:
        errors: list[str] = []

        async def cb(exc: Exception) -> None:
            errors.append(str(exc))

        cred = credentials.load(home, name)
        url = credentials.with_user(srv.url, cred)
        nc = await nats.connect(url, error_cb=cb, allow_reconnect=False, inbox_prefix=inbox_for(url))
        opened.append(nc)
        return Conn(nc, errors)

    admin = await as_("admin")
    await ensure_streams(admin.nc.jetstream())
    await ensure_bucket(admin.nc.jetstream())
    yield as_
    for nc in opened:
        await nc.close()


async def test_an_anonymous_connection_is_refused(server: tuple[EmbeddedNats, Path]) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(server[0].url, allow_reconnect=False, max_reconnect_attempts=0)


async def test_an_agent_writes_its_own_facts_and_nothing_else(connect) -> None:  # type: ignore[no-untyped-def]
    agent = await connect("agent:architect")
    assert await agent.stored("agents.architect.heartbeat")
    for subject in ("agents.coo.heartbeat", "agents.architect.woken", "tasks.T1.claimed",
                    "mail.M1.sent", "providers.b1.updated", "usage.b1.completed",
                    "cmd.tasks.claim", "cmd.tasks.claim.coo", "q.projector.admin"):
        assert await agent.refused(subject), subject
    assert not await agent.refused("cmd.tasks.claim.architect")
    assert not await agent.refused("q.projector")


async def test_an_agent_cannot_administer_streams_nor_steal_commands(connect) -> None:  # type: ignore[no-untyped-def]
    agent = await connect("agent:architect")
    for api in ("$JS.API.STREAM.DELETE.RUNS", "$JS.API.STREAM.UPDATE.AGENTS",
                "$JS.API.STREAM.PURGE.AGENTS", "$JS.API.STREAM.CREATE.EVIL",
                "$JS.API.STREAM.MSG.DELETE.AGENTS"):
        assert await agent.refused(api), api
    assert await agent.refused("cmd.tasks.>", subscribe=True)
    assert await agent.refused("tasks.>", subscribe=True)
    assert not await agent.refused("wake.architect", subscribe=True)
    assert await agent.refused("wake.coo", subscribe=True)


async def test_each_service_writes_only_the_state_it_decides(connect) -> None:  # type: ignore[no-untyped-def]
    tasks, gateway, dispatcher = await connect("tasks"), await connect("gateway"), await connect("dispatcher")
    assert await tasks.stored("tasks.T1.created")
    assert await tasks.stored("mail.M1.sent")
    assert await gateway.stored("usage.b1.completed")
    assert await gateway.stored("providers.b1.created")
    assert await dispatcher.stored("agents.architect.woken")
    for conn, subject in ((gateway, "tasks.T1.claimed"), (gateway, "mail.M1.read"),
                          (dispatcher, "tasks.T1.claimed"), (dispatcher, "providers.b1.updated"),
                          (tasks, "usage.b1.completed"), (tasks, "providers.b1.deleted")):
        assert await conn.refused(subject), subject
    for conn in (tasks, gateway, dispatcher):
        assert await conn.refused("$JS.API.STREAM.DELETE.RUNS")
        assert await conn.refused("$JS.API.STREAM.UPDATE.AGENTS")
        assert await conn.refused("q.projector.admin")
    assert not await dispatcher.refused("cmd.tasks.claim")
    assert await gateway.refused("cmd.tasks.>", subscribe=True)
    assert not await tasks.refused("cmd.tasks.>", subscribe=True)


async def test_a_reader_only_asks_queries(connect) -> None:  # type: ignore[no-untyped-def]
    reader = await connect("reader")
    assert not await reader.refused("q.projector")
    for subject in ("q.projector.admin", "agents.x.heartbeat", "cmd.tasks.claim",
                    "$JS.API.STREAM.INFO.AGENTS"):
        assert await reader.refused(subject), subject


async def test_the_admin_may_administer_streams(connect) -> None:  # type: ignore[no-untyped-def]
    admin = await connect("admin")
    info = await admin.nc.jetstream().stream_info("RUNS")
    assert info.config.name == "RUNS"
    assert not await admin.refused("$JS.API.STREAM.INFO.RUNS")
    assert not await admin.refused("q.projector.admin")
    assert await admin.stored("providers.b2.created")


async def test_replies_are_private_to_their_user(connect) -> None:  # type: ignore[no-untyped-def]
    agent, reader, gateway = await connect("agent:architect"), await connect("reader"), await connect("gateway")
    assert not await agent.refused("_INBOX.agent-architect.abc", subscribe=True)
    assert not await reader.refused("_INBOX.reader.abc", subscribe=True)
    assert not await gateway.refused("_INBOX.gateway.abc", subscribe=True)
    for conn, other in ((agent, "agent-coo"), (agent, "reader"), (agent, "tasks"), (reader, "agent-architect"),
                        (gateway, "projector")):
        assert await conn.refused(f"_INBOX.{other}.abc", subscribe=True), other
    for conn in (agent, reader, gateway):
        assert await conn.refused("_INBOX.>", subscribe=True)
        assert await conn.refused("_INBOX.*.*", subscribe=True)
    assert not await (await connect("admin")).refused("_INBOX.>", subscribe=True)


async def test_the_sdk_connects_under_its_own_inbox(server: tuple[EmbeddedNats, Path]) -> None:
    srv, home = server
    path = credentials.path_of(home, "agent:architect")
    async with await EventClient.connect(srv.url, credentials=path) as client:
        assert client.nc._inbox_prefix == bytearray(b"_INBOX.agent-architect")
        ack = await client.js.publish("agents.architect.heartbeat", HB)  # the ack comes to that inbox
        assert ack.seq > 0


async def test_each_singleton_writes_its_own_lease_only(connect) -> None:  # type: ignore[no-untyped-def]
    for name, other in (("notifier", "scheduler"), ("watchdog", "notifier"), ("scheduler", "watchdog")):
        conn = await connect(name)
        assert await conn.stored(f"$KV.agentledger_leases.{name}")
        assert await conn.refused(f"$KV.agentledger_leases.{other}")
        assert await conn.refused(f"$KV.agentledger_leases.{other}.x")
    assert await (await connect("scheduler")).stored("$KV.agentledger_leases.scheduler.claw-1")  # one per claw
    for conn in (await connect("agent:architect"), await connect("gateway"), await connect("tasks")):
        assert await conn.refused("$KV.agentledger_leases.notifier")
