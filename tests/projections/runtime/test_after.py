"""Reads after writes: a query with `after` waits, bounded, until the projection has the write."""

from __future__ import annotations

import msgspec
import pytest

from events.agents import AgentHeartbeat
from events.core.client import EventClient
from events.core.errors import ValidationError
from projections.runtime.protocol import QueryClient, QueryError, parse_after
from services.projector.service import ProjectorHost
from services.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # a long batch window: without `after` a read right after the write would miss it
    # query_timeout_s leaves room for an ad-hoc SQL worker to start on a loaded machine
    return msgspec.structs.replace(settings, batch_ms=300, query_timeout_s=3.0)


async def test_a_read_after_a_write_sees_it(client: EventClient, host: ProjectorHost, queries: QueryClient) -> None:
    seq = await client.publish("architect", AgentHeartbeat(status="busy", round=7))
    rows = await queries.query("agents", "get", {"AGENTS": seq}, id="architect")
    assert rows.records()[0]["round"] == 7
    rows = await queries.sql("agents", "SELECT count(*) FROM agents", after={"AGENTS": seq})
    assert rows.rows == [[1]]


async def test_a_position_never_reached_is_a_timeout_naming_it(host: ProjectorHost, queries: QueryClient) -> None:
    with pytest.raises(QueryError) as err:
        await queries.query("agents", "list", {"AGENTS": 10**9})
    assert err.value.code == "timeout" and "AGENTS" in err.value.message


async def test_a_stream_the_projection_does_not_read_is_refused(host: ProjectorHost, queries: QueryClient) -> None:
    with pytest.raises(QueryError) as err:
        await queries.query("agents", "list", {"TASKS": 1})
    assert err.value.code == "bad_request" and "it reads AGENTS" in err.value.message


@pytest.mark.parametrize(("text", "expected"), [
    ("TASKS:42", {"TASKS": 42}), ("TASKS:4,MAIL:7,TASKS:9", {"TASKS": 9, "MAIL": 7}), ("", {}),
])
def test_after_reads_the_positions_writes_answer_with(text: str, expected: dict[str, int]) -> None:
    assert parse_after(text) == expected


@pytest.mark.parametrize("text", ["TASKS", "TASKS:-1", "TASKS:x", ":4", "TASKS:99999999999999999999", "TASKS:\u00b2"])
def test_a_malformed_after_names_the_parameter(text: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_after(text)
    assert err.value.field == "after"
