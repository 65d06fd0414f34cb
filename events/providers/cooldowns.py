"""The cooldown rule of a 429, pure: how long the upstream asks to wait, and the backoff.

- `retry-after-ms` (milliseconds) wins over `retry-after`, which is delta-seconds or an HTTP-date
  (RFC 9110 §10.2.3) measured from the caller's `now`; a date in the past means 0;
- an upstream asking for more than a day is trusted for one day; garbage means "not given";
- without it: 30 s x 2^(n-1), capped at 600 s, n being the consecutive 429s (events.providers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

COOLDOWN_BASE_S = 30.0
COOLDOWN_MAX_S = 600.0
RETRY_AFTER_MAX_S = 86_400.0  # an upstream asking for more than a day is trusted for one day
HEADER_SUMMARY = (
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "x-request-id",
)


def parse_retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds the upstream asks to wait, or None when it says nothing usable.

    `retry-after-ms` (milliseconds) wins over `retry-after`, which is delta-seconds or an
    HTTP-date (RFC 9110 §10.2.3) measured from `now`. A date in the past means 0; values are
    capped at one day; garbage is None (the backoff applies).
    """
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    if (ms := lower.get("retry-after-ms")) is not None:
        value = _number(ms)
        if value is not None:
            return min(value / 1000.0, RETRY_AFTER_MAX_S)
    raw = lower.get("retry-after")
    if raw is None or raw == "":
        return None
    value = _number(raw)
    if value is None:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        value = max(0.0, (when - now).total_seconds())
    return min(value, RETRY_AFTER_MAX_S)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def backoff_s(consecutive: int) -> float:
    """30 s x 2^(n-1), capped at 600 s (n >= 1)."""
    n = max(1, consecutive)
    return COOLDOWN_MAX_S if n > 6 else min(COOLDOWN_BASE_S * 2 ** (n - 1), COOLDOWN_MAX_S)


def header_summary(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers worth keeping (never authorization or cookies)."""
    lower = {k.lower(): v for k, v in headers.items()}
    return {k: lower[k][:200] for k in HEADER_SUMMARY if k in lower}
