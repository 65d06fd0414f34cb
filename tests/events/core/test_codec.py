"""Payload codec: the reader's lenient decode versus the edge's strict validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.agents import CLASS_DEFAULTS, AgentHeartbeat, AgentRegistered
from events.core import codec
from events.core.errors import UnknownEvent, ValidationError

HB = "agents.architect.heartbeat"


def test_lenient_decode_ignores_unknown_fields_so_old_readers_survive_new_writers() -> None:
    event = codec.decode(HB, b'{"status":"idle","added_later":{"x":1}}')
    assert event == AgentHeartbeat(status="idle")


def test_strict_decode_refuses_an_unknown_field_naming_it_and_the_allowed_ones() -> None:
    with pytest.raises(ValidationError) as err:
        codec.decode_strict(HB, {"status": "idle", "stauts": "busy"})
    assert err.value.field == "$.stauts"
    assert "allowed: current_task, note, round, status" in str(err.value)


def test_strict_decode_locates_the_field_inside_the_callers_document() -> None:
    with pytest.raises(ValidationError) as err:
        codec.decode_strict(HB, {"status": 5}, "$[2].data")
    assert err.value.field == "$[2].data.status"
    assert "Expected `str`, got `int`" in str(err.value)


def test_a_missing_required_field_is_named() -> None:
    with pytest.raises(ValidationError) as err:
        codec.decode_strict(HB, {})
    assert err.value.field == "$.status"


def test_both_decoders_name_a_value_out_of_range() -> None:
    with pytest.raises(ValidationError) as strict:
        codec.decode_strict(HB, {"status": "busy", "round": -1})
    with pytest.raises(ValidationError) as lenient:
        codec.decode(HB, b'{"status":"busy","round":-1}')
    assert strict.value.field == lenient.value.field == "$.round"


def test_strict_decode_does_not_coerce_strings_into_numbers() -> None:
    with pytest.raises(ValidationError) as err:
        codec.decode_strict(HB, {"status": "busy", "round": "3"})
    assert err.value.field == "$.round"


def test_a_status_outside_the_enum_is_refused() -> None:
    with pytest.raises(ValidationError, match="asleep") as err:
        codec.decode(HB, b'{"status":"asleep"}')
    assert err.value.field == "$.status"


def test_a_payload_that_is_not_an_object_is_refused_by_both() -> None:
    with pytest.raises(ValidationError):
        codec.decode_strict(HB, ["idle"])
    with pytest.raises(ValidationError):
        codec.decode(HB, b'["idle"]')


def test_malformed_json_is_a_validation_error_not_a_crash() -> None:
    with pytest.raises(ValidationError) as err:
        codec.decode(HB, b'{"status":')
    assert err.value.field == "$"


def test_an_unknown_event_name_lists_the_known_events_of_the_domain() -> None:
    with pytest.raises(UnknownEvent, match="heartbeat, registered, status_changed, updated"):
        codec.decode("agents.architect.sneezed", b"{}")


def test_the_wire_name_of_agent_class_is_class() -> None:
    event = codec.decode_strict("agents.qa.registered", {"class": "business"})
    assert isinstance(event, AgentRegistered) and event.agent_class == "business"
    with pytest.raises(ValidationError) as err:
        codec.decode_strict("agents.qa.registered", {"agent_class": "business"})
    assert err.value.field == "$.agent_class"


def test_registration_writes_the_class_defaults_into_the_event() -> None:
    data = codec.encode(AgentRegistered(agent_class="high_frequency"))
    again = codec.decode("agents.qa.registered", data)
    assert isinstance(again, AgentRegistered)
    assert again.heartbeat_interval_s == CLASS_DEFAULTS["high_frequency"].heartbeat_interval_s
    assert b'"heartbeat_interval_s":600' in data


def test_defaults_are_omitted_on_the_wire() -> None:
    assert codec.encode(AgentHeartbeat(status="idle")) == b'{"status":"idle"}'


statuses = st.sampled_from(["idle", "busy", "offline", "exhausted"])
texts = st.none() | st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=200)


@given(statuses, texts, st.none() | st.integers(min_value=0, max_value=2**31 - 1), texts)
def test_every_valid_heartbeat_survives_encode_and_both_decoders(status, task, rnd, note) -> None:  # type: ignore[no-untyped-def]
    event = AgentHeartbeat(status=status, current_task=task, round=rnd, note=note)
    data = codec.encode(event)
    assert codec.decode(HB, data) == event
    import msgspec

    assert codec.decode_strict(HB, msgspec.json.decode(data)) == event


def test_an_invalid_choice_lists_the_allowed_values() -> None:
    with pytest.raises(ValidationError) as err:
        codec.decode("agents.a.heartbeat", b'{"status":"asleep"}')
    assert err.value.field == "$.status"
    assert "allowed: busy, exhausted, idle, offline" in str(err.value)
