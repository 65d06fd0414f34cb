"""The usage fact: `usage.<backend>.completed`, one per proxied attempt."""

from __future__ import annotations

import msgspec
import pytest

from events.core import codec
from events.core.errors import ValidationError
from events.usage import UsageCompleted, msg_id

SUBJECT = "usage.bkd_nvidia1.completed"


def test_a_minimal_published_usage_event_decodes_with_defaults() -> None:
    event = codec.decode(SUBJECT, b'{"model":"glm-4.7","status":200}')
    assert event == UsageCompleted(model="glm-4.7", status=200)
    assert isinstance(event, UsageCompleted)
    assert (event.stream, event.emergency, event.pool, event.attempt) == (
        False,
        False,
        "primary",
        1,
    )


def test_a_full_usage_event_round_trips_as_a_plain_json_object() -> None:
    event = UsageCompleted(
        model="glm-4.7",
        native_model="z-ai/glm4.7",
        status=200,
        prompt_tokens=120,
        completion_tokens=30,
        cost=0.00048,
        latency_ms=812.5,
        ttft_ms=95.0,
        stream=True,
        emergency=True,
        pool="fallback",
        request_id="req-1",
        attempt=2,
    )
    data = codec.encode(event)
    assert msgspec.json.decode(data)["ttft_ms"] == 95.0
    assert codec.decode(SUBJECT, data) == event
    assert event.total_tokens == 150


def test_defaults_are_left_out_of_the_payload() -> None:
    assert msgspec.json.decode(codec.encode(UsageCompleted(model="m"))) == {"model": "m"}


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (UsageCompleted(model="m", status=200), False),
        (UsageCompleted(model="m", status=429), True),
        (UsageCompleted(model="m", status=503), True),
        (UsageCompleted(model="m", error="timeout"), True),
        (UsageCompleted(model="m", status=200, error="stream_broken"), True),
    ],
)
def test_an_attempt_is_an_error_without_a_status_with_a_4xx_or_5xx_or_with_an_error(
    event: UsageCompleted, error: bool
) -> None:
    assert event.is_error is error


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "m", "prompt_tokens": -1}, "$.prompt_tokens"),
        ({"model": "m", "status": 42}, "$.status"),
        ({"model": "m", "pool": "spare"}, "$.pool"),
        ({"status": 200}, "$.model"),
        ({"model": "m", "tokens": 3}, "$.tokens"),
    ],
)
def test_invalid_usage_from_the_edge_names_the_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        codec.decode_strict(SUBJECT, body)
    assert info.value.field == field


def test_the_message_id_of_an_attempt_is_stable_for_the_spool_to_replay() -> None:
    event = UsageCompleted(model="m", request_id="req-1", attempt=2)
    assert msg_id(event, "bkd_a") == "usage:bkd_a:req-1:2" == msg_id(event, "bkd_a")
    assert msg_id(UsageCompleted(model="m"), "bkd_a") is None
