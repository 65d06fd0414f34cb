"""The runtime against a real JetStream: raw publishes, rejects, apply bugs, lag and trace links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import duckdb
import pyarrow as pa
from opentelemetry import trace

from events.agents import AgentHeartbeat
from events.core.client import EventClient, prepare
from projections import agents
from projections.runtime.loop import Runtime
from projections.runtime.protocol import QueryClient
from projections.runtime.store import Store
from services.projector.service import ProjectorHost
from tests.polling import eventually


def checkpoint(host: ProjectorHost, name: str = "agents") -> int:
    return host.health()[name]["checkpoints"].get("AGENTS", 0)


async def test_a_raw_nats_pub_heartbeat_shows_up_in_the_list(
    client: EventClient, host: ProjectorHost, queries: QueryClient
) -> None:
    await client.js.publish("agents.architect.heartbeat", b'{"status":"busy","current_task":"TC-1"}')
    await eventually(lambda: checkpoint(host) >= 1)
    rows = (await queries.query("agents", "list")).records()
    assert [(r["id"], r["status"], r["current_task"], r["heartbeats"]) for r in rows] == [
        ("architect", "busy", "TC-1", 1)
    ]


async def test_a_core_nats_pub_without_headers_is_stored_and_projected(
    client: EventClient, host: ProjectorHost, queries: QueryClient
) -> None:
    # exactly what `nats pub agents.architect.heartbeat '{"status":"idle"}'` sends: no headers
    await client.nc.publish("agents.architect.heartbeat", b'{"status":"idle"}')
    await client.nc.flush()
    await eventually(lambda: checkpoint(host) >= 1)
    (row,) = (await queries.query("agents", "get", id="architect")).records()
    assert row["status"] == "idle"


async def test_an_invalid_payload_is_rejected_with_its_field_and_processing_goes_on(
    client: EventClient, host: ProjectorHost, queries: QueryClient
) -> None:
    await client.js.publish("agents.architect.heartbeat", b'{"status": 5}')
    await client.js.publish("agents.architect.nonsense", b'{}')
    await client.js.publish("agents.architect.heartbeat", b'not json')
    await client.js.publish("agents.architect.x.heartbeat", b'{"status":"idle"}')
    await client.js.publish("agents.architect.heartbeat", b'{"status":"idle"}')
    await eventually(lambda: checkpoint(host) >= 5)
    health = host.health()["agents"]
    assert health["healthy"] and health["error"] is None and health["rejects"] == 4
    rejects = (await queries.rejects("agents")).records()
    by_seq = {r["seq"]: r for r in rejects}
    assert set(by_seq) == {1, 2, 3, 4}
    assert "$.status" in by_seq[1]["error"] and by_seq[1]["payload"] == '{"status": 5}'
    assert "unknown event agents.nonsense" in by_seq[2]["error"]
    assert "malformed" in by_seq[3]["error"].lower()
    assert "invalid subject" in by_seq[4]["error"] and by_seq[4]["subject"] == "agents.architect.x.heartbeat"
    (row,) = (await queries.query("agents", "list")).records()
    assert row["status"] == "idle" and row["heartbeats"] == 1 and row["last_seq"] == 5


async def test_lag_is_zero_and_caught_up_once_everything_is_committed(
    client: EventClient, host: ProjectorHost
) -> None:
    await client.publish_many(prepare(f"a{i % 5}", AgentHeartbeat(status="idle")) for i in range(3000))
    health = await eventually(lambda: (h := host.health()["agents"])["caught_up"] and h["checkpoints"].get("AGENTS") == 3000 and h)
    assert health["lag"] == 0 and health["last_batch_at"] is not None


class Flaky:
    """A projection module whose apply fails while `broken` is set."""

    def __init__(self) -> None:
        self.broken = True
        self.NAME = "flaky"
        self.SOURCES = agents.SOURCES
        self.DDL = ["CREATE TABLE IF NOT EXISTS seen (seq BIGINT PRIMARY KEY)"]
        self.QUERIES: dict[str, str] = {}

    def apply(self, con: duckdb.DuckDBPyConnection, batch: list[Any]) -> None:
        con.register("_seen", pa.table({"seq": [m.seq for m, _ in batch]}))
        con.execute("INSERT INTO seen SELECT seq FROM _seen")
        con.unregister("_seen")
        if self.broken:
            raise RuntimeError("bug in apply")


async def test_an_apply_bug_stops_the_projection_unhealthy_and_skips_nothing(
    client: EventClient, tmp_path: Path
) -> None:
    module = Flaky()
    store = Store(tmp_path / "flaky.duckdb", module).open()  # type: ignore[arg-type]
    runtime = Runtime(module, store, client.nc, batch_size=2, batch_ms=10)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        await tg.start(runtime.run)
        await client.publish_many(prepare("a", AgentHeartbeat(status="idle")) for _ in range(5))
        health = await eventually(lambda: not runtime.health()["healthy"] and runtime.health())
        assert "RuntimeError: bug in apply" in health["error"]
        assert health["checkpoints"] == {} and store.checkpoints() == {}
        assert store.connection().execute("SELECT count(*) FROM seen").fetchone() == (0,)
        assert health["lag"] == 5 and not health["caught_up"]
        module.broken = False
        await eventually(lambda: runtime.health()["checkpoints"].get("AGENTS") == 5)
        tg.cancel_scope.cancel()
    assert runtime.health()["healthy"]
    seen = store.connection().execute("SELECT seq FROM seen ORDER BY seq").fetchall()
    assert seen == [(1,), (2,), (3,), (4,), (5,)]
    store.close()


async def test_a_stopped_projection_holds_the_server_back_instead_of_buffering_the_stream(
    client: EventClient, tmp_path: Path
) -> None:
    module = Flaky()
    store = Store(tmp_path / "flaky.duckdb", module).open()  # type: ignore[arg-type]
    runtime = Runtime(module, store, client.nc, batch_size=250, batch_ms=10)  # type: ignore[arg-type]
    total = 60_000
    async with anyio.create_task_group() as tg:
        await tg.start(runtime.run)
        for _base in range(0, total, 20_000):
            await client.publish_many(prepare("a", AgentHeartbeat(status="idle")) for _ in range(20_000))
        await eventually(lambda: runtime.buffer.full)
        (feed,) = runtime.feeds

        async def server_holds_back() -> int | None:
            info = await client.js.consumer_info("AGENTS", feed.consumer)
            return info.num_pending if info.num_pending > total // 2 else None

        await eventually(server_holds_back, what="flow control stalls the server")
        assert len(runtime.buffer.items) <= runtime.buffer.capacity
        module.broken = False
        await eventually(lambda: runtime.health()["checkpoints"].get("AGENTS") == total, timeout=60)
        tg.cancel_scope.cancel()
    assert store.connection().execute("SELECT count(*), max(seq) FROM seen").fetchone() == (total, total)
    store.close()


async def test_the_batch_span_links_to_the_publishing_request(
    client: EventClient, host: ProjectorHost, spans: Any
) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /api/events") as request:
        await client.publish("architect", AgentHeartbeat(status="busy"))
    trace_id = request.get_span_context().trace_id
    await eventually(lambda: checkpoint(host) >= 1)

    def linked() -> list[Any]:
        return [
            s for s in spans.get_finished_spans()
            if s.name == "projector.batch" and any(link.context.trace_id == trace_id for link in s.links)
        ]

    (batch,) = await eventually(linked)
    assert batch.attributes["projection"] == "agents" and batch.attributes["batch.last_seq"] >= 1
