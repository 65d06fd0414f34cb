"""The query responder over NATS: SELECT only, row limits, timeouts, named queries, errors."""

from __future__ import annotations

import duckdb
import pytest

from events.agents import AgentHeartbeat, AgentRegistered
from events.core.client import EventClient
from projections.runtime.adhoc import check_select
from projections.runtime.protocol import QueryClient, QueryError
from services.projector.service import ProjectorHost
from tests.polling import eventually


@pytest.fixture
async def fleet(client: EventClient, host: ProjectorHost) -> None:
    await client.publish("coo", AgentRegistered(agent_class="business", display_name="COO"))
    await client.publish("architect", AgentHeartbeat(status="busy"))
    await client.publish("coo", AgentHeartbeat(status="idle"))
    await eventually(lambda: host.health()["agents"]["checkpoints"].get("AGENTS") == 3)


async def test_select_answers_columns_and_rows(fleet: None, queries: QueryClient) -> None:
    rows = await queries.sql("agents", "SELECT id, status, registered FROM agents ORDER BY id")
    assert rows.columns == ["id", "status", "registered"]
    assert rows.rows == [["architect", "busy", False], ["coo", "idle", True]]
    assert rows.truncated is False


@pytest.mark.parametrize("sql", [
    "INSERT INTO agents (id, heartbeats, registered, last_seq) VALUES ('x', 0, false, 0)",
    "DROP TABLE agents",
    "SELECT 1; DROP TABLE agents",
    "UPDATE agents SET status = 'idle'",
    "ATTACH '/tmp/x.duckdb' AS x",
    "COPY agents TO '/tmp/agents.csv'",
    "PRAGMA version",
])
async def test_anything_but_select_is_refused(fleet: None, queries: QueryClient, sql: str) -> None:
    with pytest.raises(QueryError) as err:
        await queries.sql("agents", sql)
    assert err.value.code == "bad_request" and "only SELECT" in err.value.message
    assert len((await queries.sql("agents", "SELECT * FROM agents")).rows) == 2


def test_the_select_check_uses_duckdbs_parser() -> None:
    check_select("WITH a AS (SELECT 1) SELECT * FROM a; FROM agents; DESCRIBE agents")
    with pytest.raises(QueryError):
        check_select("SELEC 1")
    with pytest.raises(QueryError):
        check_select("  ")
    assert duckdb.extract_statements("select 1; select 2")[1].type == duckdb.StatementType.SELECT


async def test_select_cannot_read_files_outside_the_projections(fleet: None, queries: QueryClient) -> None:
    with pytest.raises(QueryError) as err:
        await queries.sql("agents", "SELECT * FROM read_text('/etc/hostname')")
    assert err.value.code == "bad_request" and "disabled by configuration" in err.value.message


async def test_an_sql_error_is_a_bad_request(fleet: None, queries: QueryClient) -> None:
    with pytest.raises(QueryError) as err:
        await queries.sql("agents", "SELECT nope FROM agents")
    assert err.value.code == "bad_request" and "nope" in err.value.message


async def test_the_row_limit_truncates(fleet: None, queries: QueryClient) -> None:
    rows = await queries.sql("agents", "SELECT * FROM range(100)", limit=10)
    assert len(rows.rows) == 10 and rows.truncated is True
    rows = await queries.sql("agents", "SELECT * FROM range(10)", limit=10)
    assert len(rows.rows) == 10 and rows.truncated is False


async def test_the_service_limit_caps_the_asked_limit(
    fleet: None, queries: QueryClient, host: ProjectorHost
) -> None:
    cap = host.settings.query_row_limit
    rows = await queries.sql("agents", f"SELECT * FROM range({cap + 5})", limit=cap * 10)
    assert len(rows.rows) == cap and rows.truncated is True


async def test_a_slow_query_times_out(settings, host_nc, client: EventClient, queries: QueryClient) -> None:
    from tests.hosting import running

    settings.query_timeout_s = 3.0  # a worker process starts in about 0.3 s (more on a busy machine)
    async with running(ProjectorHost(settings, host_nc)):
        with pytest.raises(QueryError) as err:
            await queries.sql("agents", "SELECT sum(hash(range)) FROM range(100000000000)")
        assert err.value.code == "timeout"
        assert (await queries.sql("agents", "SELECT 42 AS x")).rows == [[42]]


async def test_unknown_projection_and_query_are_not_found(fleet: None, queries: QueryClient) -> None:
    for call in (queries.sql("nothing", "SELECT 1"), queries.query("nothing", "list"),
                 queries.query("agents", "nope"), queries.snapshot("nothing")):
        with pytest.raises(QueryError) as err:
            await call
        assert err.value.code == "not_found"


async def test_named_queries_take_params(fleet: None, queries: QueryClient) -> None:
    (coo,) = (await queries.query("agents", "get", id="coo")).records()
    assert coo["display_name"] == "COO" and coo["class"] == "business"
    assert (await queries.query("agents", "get", id="ghost")).rows == []
    with pytest.raises(QueryError) as err:
        await queries.query("agents", "get")
    assert err.value.code == "bad_request"
    stamps = (await queries.query("agents", "heartbeat_timestamps")).rows
    assert [r[0] for r in stamps] == ["architect", "coo"] and all(isinstance(r[1], float) for r in stamps)


async def test_a_malformed_request_is_a_bad_request(fleet: None, queries: QueryClient) -> None:
    with pytest.raises(QueryError) as err:
        await queries.request({"op": "drop"})
    assert err.value.code == "bad_request"


async def test_health_lists_every_hosted_projection(fleet: None, queries: QueryClient) -> None:
    health = await queries.health()
    assert set(health["agents"]) == {"healthy", "error", "lag", "checkpoints", "rejects", "caught_up", "last_batch_at",
                                     "snapshot_at"}
    assert health["agents"]["checkpoints"] == {"AGENTS": 3}


async def test_snapshot_on_demand_writes_a_readable_file(fleet: None, queries: QueryClient) -> None:
    answer = await queries.snapshot("agents")
    con = duckdb.connect(answer["path"], read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM agents").fetchone() == (2,)
        assert con.execute("SELECT seq FROM _checkpoints").fetchone() == (3,)
    finally:
        con.close()
