"""Routing over folded backends: one given/when/then test per rule, plus token bucket properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given as hgiven
from hypothesis import strategies as st

from events.providers import Backend, Cost, ModelMapping
from events.providers.routing import (
    Exhausted,
    Limits,
    Routed,
    TokenBucket,
    bucket,
    claim,
    cost,
    limits_for,
    native_model,
    plan,
    refill,
    resize,
    seconds_to_token,
    served_models,
    take,
)

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
NOW = T0.timestamp()
MODEL = "glm-4.7"


def backend(bid: str, pool: str = "primary", **kw: object) -> Backend:
    fields: dict[str, object] = {
        "id": bid,
        "created": True,
        "name": bid,
        "api_base_url": f"https://{bid}/v1",
        "api_key": "k1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pool": pool,
        "rpm_limit": 60,
        "model_mappings": {
            MODEL: ModelMapping(native_id=f"{bid}/glm", cost=Cost(input=2e-6, output=8e-6))
        },
    }
    fields.update(kw)
    return Backend(**fields)  # type: ignore[arg-type]


def cooling(bid: str, seconds: float, pool: str = "primary") -> Backend:
    return backend(bid, pool, cooldown_until=T0 + timedelta(seconds=seconds), consecutive_429s=1)


def empty(b: Backend) -> Limits:
    """Limits whose normal bucket is spent at T0 (emergency bucket untouched)."""
    lim = limits_for(b, NOW)
    return Limits(TokenBucket(lim.normal.capacity, lim.normal.rate, 0.0, NOW), lim.emergency)


def spent(b: Backend) -> Limits:
    lim = empty(b)
    return Limits(lim.normal, TokenBucket(lim.emergency.capacity, lim.emergency.rate, 0.0, NOW))


def route(
    *backends: Backend, limits: dict[str, Limits] | None = None, model: str = MODEL
) -> Routed | Exhausted:
    return plan(backends, limits or {}, model, T0)


def ids(result: Routed | Exhausted) -> list[str]:
    assert isinstance(result, Routed), result
    return [c.backend.id for c in result.candidates]


# --- order ----------------------------------------------------------------------------------


def test_the_primary_pool_is_tried_before_the_fallback_pool() -> None:
    assert ids(route(backend("f1", "fallback"), backend("p1"), backend("p2"))) == ["p1", "p2", "f1"]


def test_degraded_backends_are_tried_last_in_their_pool() -> None:
    result = route(backend("a", probe="degraded"), backend("b"), backend("f", "fallback"))
    assert ids(result) == ["b", "a", "f"]


def test_a_backend_whose_probe_says_down_is_not_tried() -> None:
    result = route(backend("a", probe="down"), backend("b"))
    assert ids(result) == ["b"]
    assert ("a", "probe says down") in result.skipped  # type: ignore[union-attr]


def test_a_backend_with_more_rpm_tokens_left_comes_first_in_its_pool() -> None:
    a, b = backend("a"), backend("b")
    _, half = claim(limits_for(a, NOW), False, NOW)
    for _ in range(30):
        _, half = claim(half, False, NOW)
    assert ids(route(a, b, limits={"a": half})) == ["b", "a"]


def test_disabled_deleted_and_unmapped_backends_are_never_candidates() -> None:
    result = route(
        backend("a", enabled=False),
        backend("b", deleted=True),
        backend("c", model_mappings={}),
        backend("d"),
    )
    assert ids(result) == ["d"]


def test_a_candidate_carries_the_native_model_id_of_its_backend() -> None:
    result = route(backend("a"))
    assert isinstance(result, Routed)
    assert result.candidates[0].native_model == "a/glm" and not result.candidates[0].emergency


# --- cooldown and RPM -----------------------------------------------------------------------


def test_routing_skips_a_backend_in_cooldown() -> None:
    result = route(cooling("a", 300), backend("b"))
    assert ids(result) == ["b"]
    assert result.skipped[0][0] == "a" and "cooling" in result.skipped[0][1]  # type: ignore[union-attr]


def test_routing_skips_a_backend_within_10_seconds_of_the_end_of_its_cooldown() -> None:
    result = route(cooling("a", 9.5), backend("b"))
    assert ids(result) == ["b"]
    assert "ends within 10 s" in result.skipped[0][1]  # type: ignore[union-attr]


def test_a_backend_whose_cooldown_has_passed_is_routed_before_its_end_is_recorded() -> None:
    assert ids(route(cooling("a", -0.001), backend("b"))) == ["a", "b"]


def test_routing_skips_a_backend_without_rpm_tokens() -> None:
    a = backend("a")
    assert ids(route(a, backend("b", "fallback"), limits={"a": empty(a)})) == ["b"]


def test_a_spent_bucket_refills_continuously() -> None:
    a = backend("a", rpm_limit=60)
    assert plan([a], {"a": empty(a)}, MODEL, T0 + timedelta(seconds=1)).emergency is False  # type: ignore[union-attr]


# --- emergency and exhaustion ---------------------------------------------------------------


def test_with_every_backend_exhausted_requests_pass_in_emergency_at_10_percent_of_rpm() -> None:
    a, f = cooling("a", 300), cooling("f", 30, "fallback")
    result = route(a, f)
    assert isinstance(result, Routed) and result.emergency
    assert [(c.backend.id, c.emergency) for c in result.candidates] == [("a", True), ("f", True)]
    lim = limits_for(a, NOW)
    assert (lim.emergency.capacity, lim.emergency.rate) == (6.0, 0.1)  # 60 rpm -> 6 a minute
    sent = 0
    while claim(lim, True, NOW)[0]:
        _, lim = claim(lim, True, NOW)
        sent += 1
    assert sent == 6


def test_emergency_prefers_the_backend_closest_to_the_end_of_its_cooldown() -> None:
    assert ids(route(cooling("a", 300), cooling("b", 20))) == ["b", "a"]


def test_the_exhausted_answer_carries_the_shortest_remaining_cooldown() -> None:
    a, b = cooling("a", 300), cooling("b", 42.2, "fallback")
    result = route(a, b, limits={"a": spent(a), "b": spent(b)})
    assert isinstance(result, Exhausted)
    assert (result.retry_after_s, result.served) == (43, True)


def test_without_cooldowns_the_exhausted_answer_waits_for_the_next_rpm_token() -> None:
    a = backend("a", rpm_limit=6)  # a token every 10 s
    result = route(a, limits={"a": spent(a)})
    assert isinstance(result, Exhausted) and result.retry_after_s == 10


def test_a_model_no_backend_maps_is_exhausted_as_not_served() -> None:
    result = route(backend("a"), model="gpt-9")
    assert isinstance(result, Exhausted)
    assert (result.served, result.retry_after_s) == (False, None) and "gpt-9" in result.reason


# --- mapping and cost -----------------------------------------------------------------------


def test_the_canonical_model_maps_to_the_backends_native_id() -> None:
    assert native_model(backend("a"), MODEL) == "a/glm"
    assert native_model(backend("a"), "other") is None


def test_cost_is_tokens_times_the_price_per_token() -> None:
    assert cost(backend("a"), MODEL, 1000, 500) == pytest.approx(1000 * 2e-6 + 500 * 8e-6)
    assert cost(backend("a"), "other", 1000, 500) == 0.0


def test_the_served_models_are_those_of_live_enabled_backends() -> None:
    other = backend("b", model_mappings={"qwen": ModelMapping(native_id="q")})
    assert served_models(
        [
            backend("a"),
            other,
            backend("c", enabled=False, model_mappings={"x": ModelMapping(native_id="x")}),
        ]
    ) == ["glm-4.7", "qwen"]


# --- token bucket ---------------------------------------------------------------------------


def test_a_new_bucket_is_full_and_a_take_spends_one_token() -> None:
    ok, b = take(bucket(60, NOW), NOW)
    assert ok and b.tokens == 59


def test_an_empty_bucket_refuses_and_says_when_the_next_token_comes() -> None:
    b = TokenBucket(60, 1.0, 0.25, NOW)
    ok, after = take(b, NOW)
    assert not ok and after.tokens == 0.25
    assert seconds_to_token(b, NOW) == pytest.approx(0.75)


def test_a_lower_rpm_limit_caps_the_tokens_of_an_existing_bucket() -> None:
    b = resize(bucket(60, NOW), 10, NOW)
    assert (b.capacity, b.tokens, b.rate) == (10, 10, pytest.approx(10 / 60))
    assert limits_for(backend("a", rpm_limit=10), NOW, limits_for(backend("a"), NOW)).normal == b


ops = st.lists(
    st.tuples(
        st.floats(min_value=-5, max_value=120, allow_nan=False),
        st.sampled_from(["take", "refill", "resize"]),
        st.integers(min_value=0, max_value=600),
    ),
    max_size=60,
)


@hgiven(rpm=st.integers(min_value=0, max_value=600), steps=ops)
def test_a_bucket_never_goes_negative_nor_above_its_capacity(rpm: int, steps: list) -> None:
    b, now = bucket(rpm, NOW), NOW
    for dt, op, new_rpm in steps:
        now += dt  # the clock may even go back a little
        before = refill(b, now).tokens
        if op == "take":
            ok, b = take(b, now)
            assert ok == (before >= 1.0)
        elif op == "refill":
            b = refill(b, now)
        else:
            b = resize(b, new_rpm, now)
        assert 0.0 <= b.tokens <= b.capacity


@hgiven(rpm=st.integers(min_value=1, max_value=600), seconds=st.floats(min_value=0, max_value=600))
def test_a_bucket_grants_no_more_than_its_capacity_plus_what_time_refilled(
    rpm: int, seconds: float
) -> None:
    b, granted = bucket(rpm, NOW), 0
    for i in range(rpm * 12 + 2):
        ok, b = take(b, NOW + seconds * i / (rpm * 12 + 1))
        granted += ok
    assert granted <= rpm + seconds * rpm / 60 + 1
