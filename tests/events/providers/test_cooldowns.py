"""The Retry-After parser of events.providers.cooldowns: seconds, milliseconds, HTTP dates."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from events.providers import (
    ObserveRateLimit,
)
from events.providers.cooldowns import parse_retry_after
from tests.events.providers.given import CREATED, T0, given

# --- Retry-After parsing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": " 17 "}, 17.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "Sat, 21 Nov 2026 09:01:30 GMT"}, 90.0),
        ({"Retry-After": "Sat, 21 Nov 2026 08:00:00 GMT"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After-Ms": "1500", "Retry-After": "9"}, 1.5),
        ({"Retry-After": "99999999"}, 86_400.0),
        ({}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-3"}, None),
        ({"Retry-After": "nan"}, None),
        ({"retry-after-ms": "x", "Retry-After": "4"}, 4.0),
    ],
)
def test_retry_after_is_read_from_seconds_http_dates_and_milliseconds(
    headers: Mapping[str, str], seconds: float | None
) -> None:
    assert parse_retry_after(headers, T0) == seconds


def test_an_unusable_retry_after_falls_back_to_the_backoff() -> None:
    given(CREATED).when(ObserveRateLimit(headers={"Retry-After": "soon"})).then_cooldown(
        30.0, "backoff", 1
    )
