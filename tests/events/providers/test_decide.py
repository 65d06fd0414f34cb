"""The providers decider and the cooldown rule: given/when/then, one test per rule, no server."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given as hgiven
from hypothesis import strategies as st

from events.core import codec
from events.core.errors import ValidationError
from events.providers import (
    AlreadyExists,
    BackendDeleted,
    BackendUpdated,
    CooldownEnded,
    CooldownStarted,
    Create,
    KeyRotated,
    NotEncrypted,
    NotFound,
    ObserveProbe,
    ObserveRateLimit,
    ObserveSuccess,
    ProbeChanged,
    RateLimited,
    Recovered,
    RotateKey,
    Update,
    due,
    evolve,
)
from events.providers.cooldowns import backoff_s, parse_retry_after
from tests.events.providers.given import BACKEND, CREATED, HTTP_429, TOKEN, TOKEN2, given, run, s

# --- the cooldown rule ----------------------------------------------------------------------


def test_retry_after_2_cools_the_backend_for_2_seconds() -> None:
    given(CREATED).when(ObserveRateLimit(headers={"Retry-After": "2"})).then_cooldown(
        2.0, "retry_after", 1
    )


def test_repeated_429s_without_the_header_cool_30_60_120_and_so_on_up_to_600() -> None:
    g, lengths, t = given(CREATED), [], 0.0
    for _ in range(7):
        g = run(g, HTTP_429, t)
        assert g.state.cooldown_until is not None
        lengths.append((g.state.cooldown_until - s(t)).total_seconds())
        t += lengths[-1] + 1  # the next 429 comes after the cooldown ended
    assert lengths == [30, 60, 120, 240, 480, 600, 600]
    assert g.state.consecutive_429s == 7


def test_the_backoff_is_30_seconds_times_2_to_the_n_minus_1_capped_at_600() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4, 5, 6, 7, 50, 10_000)] == [
        30,
        60,
        120,
        240,
        480,
        600,
        600,
        600,
        600,
    ]


def test_a_shorter_retry_after_never_shortens_an_active_cooldown() -> None:
    g = run(given(CREATED), HTTP_429, 0)  # 30 s
    g.at(5).when(ObserveRateLimit(headers={"Retry-After": "2"})).then_no_cooldown()


def test_a_longer_retry_after_extends_an_active_cooldown() -> None:
    g = run(given(CREATED), HTTP_429, 0)
    g.at(5).when(ObserveRateLimit(headers={"Retry-After": "100"})).then_cooldown(
        100.0, "retry_after", 1
    )


def test_429s_inside_an_active_cooldown_do_not_raise_the_backoff() -> None:
    g = run(run(run(given(CREATED), HTTP_429, 0), HTTP_429, 1), HTTP_429, 2)
    g.then_state(consecutive_429s=1, cooldown_until=s(30))
    g.at(3).when(HTTP_429).then_no_cooldown()


def test_a_cooldown_started_event_that_would_shorten_the_cooldown_is_a_noop() -> None:
    g = given(
        CREATED,
        (0, CooldownStarted(until=s(300), length_s=300)),
        (1, CooldownStarted(until=s(10), length_s=9)),
    )
    g.then_state(cooldown_until=s(300))
    g.then_noop("already cools until")


def test_a_cooldown_ends_when_due_and_the_backoff_count_survives_the_end() -> None:
    g = run(given(CREATED), HTTP_429, 0)
    assert due(g.state, s(29)) == []
    assert due(g.state, s(30)) == [CooldownEnded(until=s(30))]
    state, reason = evolve(g.state, CooldownEnded(until=s(30)), s(30))
    assert reason is None and state.cooldown_until is None and state.consecutive_429s == 1


def test_a_stale_cooldown_end_does_not_close_a_newer_cooldown() -> None:
    g = given(
        CREATED,
        (0, CooldownStarted(until=s(30), length_s=30)),
        (20, CooldownStarted(until=s(120), length_s=100, reason="retry_after")),
        (30, CooldownEnded(until=s(30))),
    )
    g.then_state(cooldown_until=s(120))
    g.then_noop("cools until")


def test_a_second_cooldown_end_is_a_noop_with_its_reason() -> None:
    g = given(
        CREATED,
        CooldownStarted(until=s(30), length_s=30),
        (30, CooldownEnded()),
        (31, CooldownEnded()),
    )
    g.then_noop("no cooldown to end")


def test_a_success_after_429s_resets_the_backoff_to_30_seconds() -> None:
    g = run(given(CREATED), HTTP_429, 0)
    g.at(31).when(ObserveSuccess()).then(Recovered(status=200))
    g = run(g, ObserveSuccess(), 31)
    g.then_state(consecutive_429s=0)
    run(g, HTTP_429, 40).then_state(cooldown_until=s(70))


def test_a_success_without_earlier_429s_records_nothing() -> None:
    given(CREATED).when(ObserveSuccess()).then()


def test_a_rate_limit_keeps_only_the_rate_limit_headers_never_credentials() -> None:
    events = (
        given(CREATED)
        .when(
            ObserveRateLimit(
                headers={
                    "Retry-After": "7",
                    "Authorization": "Bearer sk-x",
                    "Set-Cookie": "a=b",
                    "X-RateLimit-Remaining-Requests": "0",
                },
                model="glm-4.7",
            )
        )
        .decided()
    )
    noted = events[0]
    assert isinstance(noted, RateLimited)
    assert noted.headers == {"retry-after": "7", "x-ratelimit-remaining-requests": "0"}
    assert (noted.retry_after_s, noted.model, noted.consecutive) == (7.0, "glm-4.7", 1)


def test_a_raw_rate_limited_event_without_a_count_still_counts() -> None:
    given(CREATED, RateLimited()).then_state(consecutive_429s=1)


# --- configuration --------------------------------------------------------------------------


def test_a_new_backend_can_be_created() -> None:
    given().when(Create(event=CREATED)).then(CREATED)


def test_a_backend_cannot_be_created_twice() -> None:
    given(CREATED).when(Create(event=CREATED)).then_raises(AlreadyExists, "bkd_nvidia1")


def test_a_backend_that_does_not_exist_cannot_be_updated() -> None:
    given().when(Update(event=BackendUpdated(rpm_limit=5))).then_raises(NotFound, "does not exist")


def test_a_deleted_backend_refuses_every_command() -> None:
    given(CREATED, BackendDeleted()).when(HTTP_429).then_raises(NotFound, "was deleted")


def test_an_update_that_repeats_the_configuration_records_nothing() -> None:
    given(CREATED).when(Update(event=BackendUpdated(rpm_limit=40, backend_name="nvidia 1"))).then()


def test_an_update_changes_only_the_fields_it_names() -> None:
    g = given(CREATED, BackendUpdated(rpm_limit=5, enabled=False))
    g.then_state(rpm_limit=5, enabled=False, name="nvidia 1", api_key=TOKEN, pool="primary")


def test_events_after_deletion_are_noops_with_their_reason() -> None:
    g = given(CREATED, BackendDeleted(), BackendUpdated(rpm_limit=5))
    g.then_state(rpm_limit=40, deleted=True)
    g.then_noop("was deleted")


def test_a_key_rotation_records_the_new_token() -> None:
    given(CREATED).when(RotateKey(api_key=TOKEN2)).then(KeyRotated(api_key=TOKEN2))
    given(CREATED, KeyRotated(api_key=TOKEN2)).then_state(api_key=TOKEN2)
    assert given(CREATED, KeyRotated(api_key=TOKEN2)).state.key_id == "k2"


def test_rotating_to_the_same_token_records_nothing() -> None:
    given(CREATED).when(RotateKey(api_key=TOKEN)).then()


def test_a_plaintext_key_is_refused_by_the_rotation_command() -> None:
    given(CREATED).when(RotateKey(api_key="nvapi-plain-secret-key-123")).then_raises(
        NotEncrypted, "encrypted token"
    )


def test_a_plaintext_key_in_a_published_event_is_refused_without_echoing_it() -> None:
    body = {"name": "x", "api_base_url": "https://x/v1", "api_key": "nvapi-plain-secret-key-123"}
    with pytest.raises(ValidationError) as info:
        codec.decode_strict(f"providers.{BACKEND}.created", body)
    assert info.value.field == "$.api_key" and "nvapi-plain" not in str(info.value)


def test_a_created_event_round_trips_through_the_codec_as_a_plain_json_object() -> None:
    data = codec.encode(CREATED)
    assert msgspec.json.decode(data)["name"] == "nvidia 1"
    assert codec.decode(f"providers.{BACKEND}.created", data) == CREATED


# --- probes ---------------------------------------------------------------------------------


def test_a_probe_that_changes_the_verdict_is_recorded_with_the_previous_one() -> None:
    given(CREATED).when(ObserveProbe(state="degraded", error="timeout")).then(
        ProbeChanged(state="degraded", previous="healthy", error="timeout")
    )


def test_a_probe_that_repeats_the_verdict_records_nothing() -> None:
    given(CREATED, ProbeChanged(state="down")).when(ObserveProbe(state="down")).then()


def test_a_probe_change_moves_the_probe_state_and_its_time() -> None:
    given(CREATED, (12, ProbeChanged(state="degraded"))).then_state(
        probe="degraded", probe_since=s(12)
    )


# --- properties -----------------------------------------------------------------------------

observations = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=900, allow_nan=False),
        st.sampled_from(
            [{}, {"Retry-After": "2"}, {"retry-after-ms": "45000"}, {"Retry-After": "x"}]
        ),
    ),
    min_size=1,
    max_size=30,
)


@hgiven(steps=observations)
def test_decided_429s_always_fold_and_never_shorten_an_active_cooldown(steps: list) -> None:
    g, t = given(CREATED), 0.0
    for dt, headers in steps:
        t += dt
        before = g.state
        g = run(g, ObserveRateLimit(headers=headers), t)
        assert all(r is None for r in g.reasons), g.reasons
        if before.cooling(s(t)):
            assert g.state.cooldown_until is not None and before.cooldown_until is not None
            assert g.state.cooldown_until >= before.cooldown_until
        assert g.state.cooling(s(t)) or parse_retry_after(headers, s(t)) == 0
        assert 1 <= g.state.consecutive_429s <= len(steps)
