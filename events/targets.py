"""Delivery targets of reports and alerts: where the notifier sends, one aggregate per name.

Invariants:
- the target name is the aggregate id (`targets.<name>.<event>`), never in the payload;
- a kind's secret fields (webhook URLs carrying tokens, bot tokens, signing secrets) travel only
  as ONE keyring token (`secrets`: the JSON object of those fields, AES-256-GCM, associated data
  `target:<name>`), so no plaintext reaches the stream; the schema refuses anything else there;
- every other field is plain (`settings`) and checked against the kind's list at the edge
  (`check_fields`), naming the field;
- a target is created once; a removed target stays removed; `updated` changes only what it names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, assert_never

import msgspec
from msgspec.structs import replace

from events.core.bounds import FLOAT_MAX, INT64_MAX
from events.core.errors import ValidationError
from events.core.keyring import TOKEN_PATTERN
from events.core.policy import Writers, writers
from events.core.registry import Event

Kind = Literal["discord", "telegram", "feishu", "slack", "webhook", "command", "apprise"]
Token = Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN, max_length=16384)]
Scalar = (Annotated[str, msgspec.Meta(max_length=4096)]
          | Annotated[int, msgspec.Meta(ge=-INT64_MAX, le=INT64_MAX)]
          | Annotated[float, msgspec.Meta(ge=-FLOAT_MAX, le=FLOAT_MAX)] | bool)
Settings = Annotated[dict[Annotated[str, msgspec.Meta(max_length=64)], Scalar], msgspec.Meta(max_length=100)]


class Spec(msgspec.Struct, frozen=True):
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    secret: tuple[str, ...] = ()  # those of required/optional that are encrypted


# The platforms' fields; everything in `secret` is encrypted, the rest stays readable.
KINDS: dict[str, Spec] = {
    "discord": Spec(("url",), secret=("url",)),
    "telegram": Spec(("bot_token", "chat_id"), ("api_base",), secret=("bot_token",)),
    "feishu": Spec(("url",), ("signing_secret",), secret=("url", "signing_secret")),
    "slack": Spec(("url",), secret=("url",)),
    "webhook": Spec(("url",), ("signing_secret",), secret=("url", "signing_secret")),
    "command": Spec(("command",), ("timeout_s",)),
    "apprise": Spec(("url",), secret=("url",)),
}
COMMON = ("name", "kind", "default", "enabled")


def aad(name: str) -> str:
    """Associated data of a target's secrets: a token copied onto another target won't open."""
    return f"target:{name}"


def check_fields(kind: str, fields: dict[str, Any], *, partial: bool = False) -> None:
    """Refuse unknown or missing kind-specific fields, naming the field (`$.<field>`)."""
    spec = KINDS.get(kind)
    if spec is None:
        raise ValidationError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}", field="$.kind")
    allowed = set(spec.required) | set(spec.optional)
    for key, value in fields.items():
        if key not in allowed:
            raise ValidationError(
                f"unknown field {key!r} for a {kind} target; allowed: {', '.join(sorted(allowed | set(COMMON)))}",
                field=f"$.{key}",
            )
        if not isinstance(value, (str, int, float, bool)) or (isinstance(value, str) and not value.strip()):
            raise ValidationError(f"{key} must be a non-empty string or a number", field=f"$.{key}")
    if not partial:
        for key in spec.required:
            if key not in fields:
                raise ValidationError(f"a {kind} target needs {key!r}", field=f"$.{key}")


def split_secrets(kind: str, fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(plain settings, secret fields) of a kind's fields."""
    secret = set(KINDS[kind].secret)
    return ({k: v for k, v in fields.items() if k not in secret},
            {k: str(v) for k, v in fields.items() if k in secret})


# --- events ---------------------------------------------------------------------------------


class TargetEvent(Event, frozen=True, kw_only=True):
    domain: ClassVar[str] = "targets"
    writers: ClassVar[Writers] = writers("gateway", "admin")
    written_by: ClassVar[str] = "the admin API (gateway) or an operator"


class TargetCreated(TargetEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "created"
    kind: Kind
    settings: Settings = msgspec.field(default_factory=dict)
    secrets: Token | None = None
    default: bool = False
    enabled: bool = True


class TargetUpdated(TargetEvent, frozen=True, kw_only=True):
    """None leaves a field as it is; `settings` and `secrets`, when given, replace the whole."""

    name: ClassVar[str] = "updated"
    settings: Settings | None = None
    secrets: Token | None = None
    default: bool | None = None
    enabled: bool | None = None


class TargetRemoved(TargetEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "removed"
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None


TargetEvents = TargetCreated | TargetUpdated | TargetRemoved


# --- commands, state, errors ----------------------------------------------------------------


class Create(msgspec.Struct, frozen=True, kw_only=True):
    event: TargetCreated


class Update(msgspec.Struct, frozen=True, kw_only=True):
    event: TargetUpdated


class Remove(msgspec.Struct, frozen=True, kw_only=True):
    reason: str | None = None


TargetCommand = Create | Update | Remove


class Target(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    created: bool = False
    removed: bool = False
    kind: str = ""
    settings: dict[str, Any] = msgspec.field(default_factory=dict)
    secrets: str | None = None  # keyring token; opened only in the notifier's and gateway's memory
    default: bool = False
    enabled: bool = True
    updated_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.created and not self.removed


class TargetRuleError(Exception):
    """Root of the targets rules; the message names the target."""


class AlreadyExists(TargetRuleError):
    pass


class NotFound(TargetRuleError):
    pass


def initial_state(name: str) -> Target:
    return Target(name=name)


def decide(cmd: TargetCommand, state: Target, now: datetime) -> list[TargetEvent]:
    if not isinstance(cmd, Create) and not state.live:
        raise NotFound(f"target {state.name} {'was removed' if state.removed else 'does not exist'}")
    match cmd:
        case Create(event=ev):
            if state.created:
                raise AlreadyExists(f"target {state.name} already exists")
            return [ev]
        case Update(event=ev):
            fields = ("settings", "secrets", "default", "enabled")
            if all(getattr(ev, f) in (None, getattr(state, f)) for f in fields):
                return []
            return [ev]
        case Remove(reason=reason):
            return [TargetRemoved(reason=reason)]
        case _:
            assert_never(cmd)


def evolve(state: Target, event: TargetEvent, at: datetime) -> tuple[Target, str | None]:
    if not isinstance(event, TargetCreated) and not state.live:
        return state, f"target {state.name} {'was removed' if state.removed else 'does not exist'}"
    match event:
        case TargetCreated():
            if state.created:
                return state, f"target {state.name} already exists"
            return replace(state, created=True, kind=event.kind, settings=dict(event.settings),
                           secrets=event.secrets, default=event.default, enabled=event.enabled,
                           updated_at=at), None
        case TargetUpdated():
            changes = {f: v for f in ("settings", "secrets", "default", "enabled")
                       if (v := getattr(event, f)) is not None}
            return replace(state, updated_at=at, **changes), None
        case TargetRemoved():
            return replace(state, removed=True, updated_at=at), None
        case _:
            return state, f"unhandled event {type(event).__name__}"
