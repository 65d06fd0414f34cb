"""The usage domain: one `usage.<backend>.completed` fact per proxied attempt.

Invariants:
- the backend id is the aggregate id (subject); an attempt that failed over to another backend is
  a second event on that other backend's subject, both sharing `request_id`;
- usage events are facts, never refused: there is no decider, only the event and pure helpers;
- `model` is the canonical name the client asked for, `native_model` what the upstream was sent;
- `status` is the upstream's HTTP status, None when no answer came (connect error, timeout);
  an attempt is an error when it has no status, a status >= 400, or an `error`;
- the writer publishes with `Nats-Msg-Id: usage:<backend>:<request_id>:<attempt>` (`msg_id`) so a spooled event
  replayed after an outage is stored once.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from events.core.bounds import HttpStatus, Label, Text, integer, label, number
from events.core.policy import Writers, writers
from events.core.registry import Event

# per request, summed into BIGINT buckets: 2^32 requests at the limit before a bucket overflows
Tokens = integer()
Millis = number(le=1e10)  # about 115 days
COST_MAX = 1e6
Cost = number(le=COST_MAX)  # per request; summed in micro-units, exactly
RequestId = label(128)
Attempt = integer(ge=1, le=1000)
ErrorKind = Literal["timeout", "connect", "upstream", "stream_broken", "client_gone"]


class UsageEvent(Event, frozen=True, kw_only=True):
    domain: ClassVar[str] = "usage"
    writers: ClassVar[Writers] = writers("gateway")
    written_by: ClassVar[str] = "the gateway's provider proxy"


class UsageCompleted(UsageEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "completed"
    model: Label
    native_model: Label | None = None
    endpoint: Literal["chat/completions", "completions", "embeddings", "other"] = "chat/completions"
    status: HttpStatus | None = None
    prompt_tokens: Tokens = 0
    completion_tokens: Tokens = 0
    cost: Cost = 0.0
    latency_ms: Millis = 0.0
    ttft_ms: Millis | None = None  # streams only: time to the first byte of the body
    stream: bool = False
    emergency: bool = False
    pool: Literal["primary", "fallback"] = "primary"
    request_id: RequestId | None = None
    attempt: Attempt = 1
    error: ErrorKind | None = None
    error_detail: Text | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def is_error(self) -> bool:
        return self.status is None or self.status >= 400 or self.error is not None


UsageEvents = UsageCompleted


def msg_id(event: UsageCompleted, backend_id: str) -> str | None:
    """The deduplication id of one attempt (None when the writer gave no request id)."""
    if event.request_id is None:
        return None
    return f"usage:{backend_id}:{event.request_id}:{event.attempt}"
