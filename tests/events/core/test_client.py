"""The SDK against a real JetStream: acks, pipelining, optimistic appends, atomic batches."""

from __future__ import annotations

import pytest

from events.agents import AgentHeartbeat, AgentRegistered, AgentStatusChanged, AgentUpdated
from events.core.client import (
    Append,
    EventClient,
    Outgoing,
    PublishError,
    Refused,
    prepare,
    prepare_json,
)
from events.core.errors import Conflict, Unavailable, ValidationError
from events.core.streams import ensure_streams


async def test_publish_returns_the_acked_sequence(client: EventClient) -> None:
    seq = await client.publish("architect", AgentHeartbeat(status="idle"))
    info = await client.js.stream_info("AGENTS")
    assert seq == info.state.last_seq == 1


async def test_pipelined_publish_acks_every_message_in_order(client: EventClient) -> None:
    outs = [prepare(f"a{i % 7}", AgentHeartbeat(status="busy", round=i)) for i in range(3000)]
    seqs = await client.publish_many(outs)
    assert seqs == list(range(1, 3001))


async def test_msg_id_deduplicates_a_retried_publish(client: EventClient) -> None:
    first = await client.publish("coo", AgentHeartbeat(status="idle"), msg_id="hb-coo-1")
    again = await client.publish("coo", AgentHeartbeat(status="idle"), msg_id="hb-coo-1")
    assert first == again
    assert (await client.js.stream_info("AGENTS")).state.messages == 1


async def test_append_to_a_new_aggregate_expects_zero(client: EventClient) -> None:
    assert await client.append("sec", [AgentRegistered()], expected_seq=0) == [1]
    with pytest.raises(Conflict) as err:
        await client.append("sec", [AgentRegistered()], expected_seq=0)
    assert err.value.last_seq == 1


async def test_expected_sequence_covers_every_event_of_the_aggregate(client: EventClient) -> None:
    await client.append("sec", [AgentRegistered()], expected_seq=0)
    await client.publish("other", AgentHeartbeat(status="idle"))
    seq = await client.publish("sec", AgentHeartbeat(status="idle"))
    with pytest.raises(Conflict):
        await client.append("sec", [AgentUpdated(display_name="x")], expected_seq=1)
    assert await client.append("sec", [AgentUpdated(display_name="x")], expected_seq=seq) == [seq + 1]


async def test_atomic_append_stores_all_events_contiguously(client: EventClient) -> None:
    seqs = await client.append(
        "qa", [AgentRegistered(), AgentHeartbeat(status="busy"), AgentStatusChanged(status="busy")],
        expected_seq=0,
    )
    assert seqs == [1, 2, 3]


async def test_refused_atomic_append_stores_nothing(client: EventClient) -> None:
    await client.publish("qa", AgentHeartbeat(status="idle"))
    with pytest.raises(Conflict):
        await client.append(
            "qa", [AgentRegistered(), AgentHeartbeat(status="busy")], expected_seq=0
        )
    assert (await client.js.stream_info("AGENTS")).state.messages == 1


async def test_oversized_payload_is_refused_not_lost_silently(client: EventClient) -> None:
    big = AgentHeartbeat(status="idle")
    out = prepare("qa", big)
    with pytest.raises((Refused, Unavailable)):
        await client.send(type(out)(out.subject, b'{"status":"idle","note":"' + b"x" * (1100 * 1024) + b'"}'))


async def test_publish_without_streams_is_unavailable(nats_url: str) -> None:
    async with await EventClient.connect(nats_url, timeout=1.0) as c:
        with pytest.raises(Unavailable):
            await c.publish("x", AgentHeartbeat(status="idle"))


async def test_streams_are_created_once_and_then_unchanged(nats_url: str) -> None:
    async with await EventClient.connect(nats_url) as c:
        first = await ensure_streams(c.js)
        second = await ensure_streams(c.js)
        assert set(first.values()) == {"created"}
        assert set(second.values()) == {"unchanged"}
        assert "AGENTS" in first and "USAGE" in first
        info = await c.js.stream_info("AGENTS")
        assert info.config.deny_delete and info.config.deny_purge and info.config.allow_atomic
        changed = await ensure_streams(c.js, duplicate_window_s=60.0)
        assert set(changed.values()) == {"updated"}


def test_prepare_json_names_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        prepare_json("agents.architect.heartbeat", {"status": 5}, where="$[3].data")
    assert err.value.field == "$[3].data.status"


async def test_pipelined_publish_reports_a_missing_ack_instead_of_hanging(nats_url: str) -> None:
    async with await EventClient.connect(nats_url, timeout=1.0) as c:
        await ensure_streams(c.js)
        async def swallow(msg: object) -> None:  # a responder that never answers: no no-responders status
            return None

        await c.nc.subscribe("silent.>", cb=swallow)
        ok = prepare("a", AgentHeartbeat(status="idle"))
        with pytest.raises(PublishError) as err:
            await c.publish_many([ok, Outgoing("silent.x.y", b"{}"), ok])
        assert err.value.seqs == [1, None, 2]
        assert "may or may not be stored" in str(err.value.errors[1])


async def test_a_full_window_without_acks_stops_sending_and_says_so(nats_url: str) -> None:
    async with await EventClient.connect(nats_url, timeout=0.2, window=2) as c:
        async def swallow(msg: object) -> None:
            return None

        await c.nc.subscribe("silent.>", cb=swallow)
        with pytest.raises(PublishError) as err:
            await c.publish_many([Outgoing("silent.x.y", b"{}")] * 5)
        assert err.value.seqs == [None, None]
        assert "window of 2 full" in str(err.value)


async def test_an_atomic_batch_across_aggregates_checks_each_expectation(client: EventClient) -> None:
    parent = await client.publish("parent", AgentRegistered())
    seqs = await client.append_batch([
        Append("parent", AgentUpdated(display_name="p"), parent),
        Append("child-1", AgentRegistered(), 0),
        Append("child-2", AgentRegistered(), 0),
    ])
    assert seqs == [2, 3, 4]
    with pytest.raises(Conflict):
        await client.append_batch([
            Append("parent", AgentUpdated(display_name="q"), seqs[0]),
            Append("child-1", AgentRegistered(), 0),  # exists already: the whole batch is refused
        ])
    assert (await client.js.stream_info("AGENTS")).state.messages == 4


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (AgentHeartbeat(status="sleepy"), "$.status"),  # type: ignore[arg-type]
        (AgentHeartbeat(status="busy", round="3"), "$.round"),  # type: ignore[arg-type]
        (AgentHeartbeat(status="busy", round=2**63), "$.round"),
    ],
)
async def test_the_sdk_refuses_what_every_reader_would_reject_and_publishes_nothing(
    client: EventClient, event: AgentHeartbeat, field: str
) -> None:
    with pytest.raises(ValidationError) as err:
        await client.publish("a1", event)
    assert err.value.field == field
    with pytest.raises(ValidationError):
        await client.publish_many([prepare("a1", event)])
    with pytest.raises(ValidationError):
        await client.append("a1", [event], expected_seq=0)
    assert (await client.js.stream_info("AGENTS")).state.messages == 0

