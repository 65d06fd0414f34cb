"""The language of the providers domain: events, commands, the backend state and rule errors.

The invariants and the decider are in `events.providers.decide`; the package re-exports both.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, ClassVar, Literal

import msgspec

from events.core.bounds import Count, HttpStatus, Instant, Label, integer, label, number, text
from events.core.keyring import TOKEN_PATTERN
from events.core.policy import Writers, writers
from events.core.registry import Event

Pool = Literal["primary", "fallback"]
Probe = Literal["healthy", "degraded", "down"]
Name = label(200, min_length=1)
Text = text(2000)
Url = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s\x00-\x1f\x7f]+$", max_length=2000)]
EncryptedKey = Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN, max_length=8192)]
Rpm = integer(ge=1, le=1_000_000)
Timeout = number(gt=0, le=3600)
PerToken = number(le=1000)
Seconds = number(le=1e9)
Consecutive = integer(ge=1)
Millis = number(le=1e10)
Headers = Annotated[dict[label(100), Text], msgspec.Meta(max_length=100)]


class Cost(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Price per token (not per million), in the account's currency."""

    input: PerToken = 0.0
    output: PerToken = 0.0


class ModelMapping(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    native_id: Name
    cost: Cost = Cost()


Mappings = Annotated[dict[Name, ModelMapping], msgspec.Meta(max_length=10_000)]


# --- events ---------------------------------------------------------------------------------


class ProviderEvent(Event, frozen=True, kw_only=True):
    domain: ClassVar[str] = "providers"
    writers: ClassVar[Writers] = writers("gateway")
    written_by: ClassVar[str] = "the gateway: the admin API (/api/admin/backends) and the proxy's own decisions"


class BackendCreated(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "created"
    backend_name: Name = msgspec.field(name="name")
    label: Text = ""
    api_base_url: Url
    api_key: EncryptedKey
    pool: Pool = "primary"
    enabled: bool = True
    rpm_limit: Rpm = 40
    timeout_seconds: Timeout = 120.0
    model_mappings: Mappings = msgspec.field(default_factory=dict)


class BackendUpdated(ProviderEvent, frozen=True, kw_only=True):
    """Only the fields given change; None means "leave as it is". Keys change by `key_rotated`."""

    name: ClassVar[str] = "updated"
    backend_name: Name | None = msgspec.field(default=None, name="name")
    label: Text | None = None
    api_base_url: Url | None = None
    pool: Pool | None = None
    enabled: bool | None = None
    rpm_limit: Rpm | None = None
    timeout_seconds: Timeout | None = None
    model_mappings: Mappings | None = None


class BackendDeleted(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "deleted"
    reason: Text | None = None


class KeyRotated(ProviderEvent, frozen=True, kw_only=True):
    """A new token: the same key re-encrypted under a newer key id, or a replaced key."""

    name: ClassVar[str] = "key_rotated"
    api_key: EncryptedKey
    reason: Literal["rotation", "replaced"] = "rotation"


class RateLimited(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "rate_limited"
    status: HttpStatus = 429
    model: Label | None = None
    retry_after_s: Seconds | None = None  # None: header absent
    headers: Headers = msgspec.field(default_factory=dict)  # summary, see HEADER_SUMMARY
    consecutive: Count | None = None  # n after this 429, as decided; None from raw publishers


class CooldownStarted(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "cooldown_started"
    until: Instant
    length_s: Seconds
    reason: Literal["retry_after", "backoff"] = "backoff"
    consecutive: Consecutive = 1


class CooldownEnded(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "cooldown_ended"
    until: Instant | None = None  # the end it records: a stale end cannot close a newer cooldown
    reason: Literal["expired"] = "expired"


class Recovered(ProviderEvent, frozen=True, kw_only=True):
    """A success after 429s: the backoff starts again from 30 s."""

    name: ClassVar[str] = "recovered"
    status: HttpStatus = 200


class ProbeChanged(ProviderEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "probe_changed"
    state: Probe
    previous: Probe | None = None
    status: HttpStatus | None = None
    latency_ms: Millis | None = None
    error: Text | None = None


ProviderEvents = (
    BackendCreated
    | BackendUpdated
    | BackendDeleted
    | KeyRotated
    | RateLimited
    | CooldownStarted
    | CooldownEnded
    | Recovered
    | ProbeChanged
)


# --- commands -------------------------------------------------------------------------------


class Create(msgspec.Struct, frozen=True, kw_only=True):
    event: BackendCreated


class Update(msgspec.Struct, frozen=True, kw_only=True):
    event: BackendUpdated


class Delete(msgspec.Struct, frozen=True, kw_only=True):
    reason: Text | None = None


class RotateKey(msgspec.Struct, frozen=True, kw_only=True):
    api_key: EncryptedKey  # never the plaintext
    reason: Literal["rotation", "replaced"] = "rotation"


class ObserveRateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """An upstream answered 429: `headers` as received (any case); `now` comes to decide."""

    headers: Annotated[Mapping[Label, Text], msgspec.Meta(max_length=1000)] = msgspec.field(default_factory=dict)
    status: HttpStatus = 429
    model: Label | None = None


class ObserveSuccess(msgspec.Struct, frozen=True, kw_only=True):
    status: HttpStatus = 200


class ObserveProbe(msgspec.Struct, frozen=True, kw_only=True):
    state: Probe
    status: HttpStatus | None = None
    latency_ms: Millis | None = None
    error: Text | None = None


ProviderCommand = (
    Create | Update | Delete | RotateKey | ObserveRateLimit | ObserveSuccess | ObserveProbe
)


# --- state ----------------------------------------------------------------------------------


class Backend(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    created: bool = False
    deleted: bool = False
    name: str = ""
    label: str = ""
    api_base_url: str = ""
    api_key: str = ""  # encrypted token; decrypt only in the gateway's memory
    pool: Pool = "primary"
    enabled: bool = True
    rpm_limit: int = 40
    timeout_seconds: float = 120.0
    model_mappings: dict[str, ModelMapping] = msgspec.field(default_factory=dict)
    cooldown_until: datetime | None = None  # None when no cooldown is open
    cooldown_started_at: datetime | None = None
    consecutive_429s: int = 0
    last_rate_limited_at: datetime | None = None
    probe: Probe = "healthy"
    probe_since: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.created and not self.deleted

    @property
    def key_id(self) -> str | None:
        return self.api_key.split(":", 1)[0] if self.api_key else None

    def cooling(self, now: datetime) -> bool:
        return self.cooldown_until is not None and now < self.cooldown_until

    def remaining_s(self, now: datetime) -> float:
        """Seconds of cooldown left at `now` (0 when none)."""
        if self.cooldown_until is None:
            return 0.0
        return max(0.0, (self.cooldown_until - now).total_seconds())


# --- errors ---------------------------------------------------------------------------------


class ProviderRuleError(Exception):
    """Root of the providers rules; the message names the backend."""


class AlreadyExists(ProviderRuleError):
    pass


class NotFound(ProviderRuleError):
    pass


class NotEncrypted(ProviderRuleError):
    """A key that is not a keyring token: refusing it keeps plaintext out of the stream."""
