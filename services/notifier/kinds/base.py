"""What every kind shares: the message, the outcome, and one HTTP POST that never leaks a secret.

A kind turns a `Message` into the platform's request and the platform's answer into an
`Outcome`. `ok` is True only on the platform's own success (2xx, and for Feishu and Telegram the
body's status): everything else is a failure the notifier records and retries. Errors are
scrubbed of the target's secrets (URLs with tokens, bot tokens) before they go anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import aiohttp
import orjson

from events.providers.cooldowns import parse_retry_after
from events.reports import ReportFiled

ERROR_CHARS = 300


@dataclass(frozen=True)
class Message:
    report_id: str
    target: str
    title: str
    text: str
    report: ReportFiled

    @property
    def severity(self) -> str | None:
        return self.report.severity

    @property
    def link(self) -> str | None:
        return self.report.link


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    message_id: str | None = None
    error: str = ""
    retry_after_s: float | None = None
    outcome: Literal["failed", "rate_limited", "timeout"] = "failed"


@dataclass(frozen=True)
class Target:
    """A target as the notifier uses it: settings in clear, secrets decrypted in memory only."""

    name: str
    kind: str
    settings: Mapping[str, Any]
    secrets: Mapping[str, str] = field(repr=False)  # never in a repr, a log line or an answer
    timeout_s: float = 10.0


class Kind(Protocol):
    async def __call__(self, msg: Message, target: Target, http: aiohttp.ClientSession) -> Outcome: ...


def scrub(text: str, target: Target) -> str:
    """The text with every secret of the target replaced by `****`."""
    for secret in target.secrets.values():
        if secret:
            text = text.replace(secret, "****")
    return text[:ERROR_CHARS]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None

    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers, datetime.now(UTC))

    def failure(self, target: Target, detail: str = "") -> Outcome:
        """The usual reading of a non-2xx answer: 429 is rate limited (with its hint)."""
        text = detail or self.body[:200].decode(errors="replace")
        error = scrub(f"HTTP {self.status}: {text}".strip(), target)
        if self.status == 429:
            return Outcome(False, self.status, error=error, retry_after_s=self.retry_after(), outcome="rate_limited")
        return Outcome(False, self.status, error=error, retry_after_s=self.retry_after() if self.status == 503 else None)


async def post_json(
    http: aiohttp.ClientSession, url: str, body: Any, target: Target, headers: Mapping[str, str] | None = None,
) -> Answer | Outcome:
    """POST the body; the answer, or the failure (timeout, connection) as an Outcome."""
    data = orjson.dumps(body)
    try:
        async with http.post(url, data=data, headers={"Content-Type": "application/json", **(headers or {})},
                             timeout=aiohttp.ClientTimeout(total=target.timeout_s)) as resp:
            return Answer(resp.status, resp.headers, await resp.read())
    except TimeoutError:
        return Outcome(False, error=f"no answer within {target.timeout_s:.0f}s", outcome="timeout")
    except (aiohttp.ClientError, ValueError, OSError) as exc:
        return Outcome(False, error=scrub(f"{type(exc).__name__}: {exc}", target))
