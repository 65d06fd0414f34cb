"""The targets command path, shared by the admin API and `agentledger targets`: load, decide, append.

Targets change rarely, so like backends (`services.providers`) they have no command service: the
caller folds TARGETS, decides with the pure `events.targets.decide` and appends with the target's
last seq as expectation (a lost race decides again). Secret fields are encrypted here, as one
keyring token per target, before anything becomes an event; `view` masks them for every answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.js.client import JetStreamContext

from events import targets as domain
from events.core import codec, reader
from events.core.client import EventClient
from events.core.errors import Conflict, EventError, ValidationError
from events.core.keyring import Keyring, KeyringError, mask
from events.core.subjects import check_id

log = logging.getLogger(__name__)

RETRIES = 5


class KeyringMissing(EventError):
    """A secret must be encrypted (or opened) but no keyring is configured."""


async def load(js: JetStreamContext, name: str | None = None) -> dict[str, tuple[domain.Target, int]]:
    """Every target (or one) folded from TARGETS, with its last seq; removed ones included."""
    return await reader.fold(js, "targets", domain.initial_state, domain.evolve, name)


async def execute(client: EventClient, name: str, make: Callable[[domain.Target], domain.TargetCommand],
                  *, actor: str = "admin") -> domain.Target:
    """Decide `make(state)` on the target's state and append; decided again after a lost race."""
    check_id(name, "name")
    for attempt in range(1, RETRIES + 1):
        state, seq = (await load(client.js, name)).get(name, (domain.initial_state(name), 0))
        now = datetime.now(UTC)
        events = domain.decide(make(state), state, now)
        if not events:
            return state
        try:
            await client.append(name, events, expected_seq=seq, headers={"Agl-Actor": actor})
        except Conflict:
            if attempt == RETRIES:
                raise
            continue
        for event in events:
            state, _ = domain.evolve(state, event, now)
        return state
    raise Conflict(f"target {name}: still conflicting after {RETRIES} attempts")  # pragma: no cover


def seal(keyring: Keyring | None, name: str, secrets: dict[str, str]) -> str | None:
    """The one place a target's secret fields become a token (None when the kind has none)."""
    if not secrets:
        return None
    if keyring is None:
        raise KeyringMissing("no keyring configured: set AGENTLEDGER_KEYRING or keyring_file to store target secrets")
    return keyring.encrypt(msgspec.json.encode(secrets).decode(), aad=domain.aad(name))


def opened(keyring: Keyring | None, t: domain.Target) -> dict[str, str]:
    if not t.secrets:
        return {}
    if keyring is None:
        raise KeyringMissing(f"no keyring configured to open the secrets of target {t.name}")
    return msgspec.json.decode(keyring.decrypt(t.secrets, aad=domain.aad(t.name)))


def created(keyring: Keyring | None, name: str, body: dict[str, Any]) -> domain.Create:
    """A create command from an edge body: `{name?, kind, default?, enabled?, <kind fields>}`."""
    kind = body.get("kind")
    if not isinstance(kind, str):
        raise ValidationError("missing required field 'kind'", field="$.kind")
    fields = {k: v for k, v in body.items() if k not in domain.COMMON}
    domain.check_fields(kind, fields)
    plain, secret = domain.split_secrets(kind, fields)
    event = _convert(domain.TargetCreated, {
        "kind": kind, "settings": plain, "secrets": seal(keyring, name, secret),
        **{k: body[k] for k in ("default", "enabled") if k in body},
    })
    return domain.Create(event=event)


def updated(keyring: Keyring | None, state: domain.Target, body: dict[str, Any]) -> domain.TargetCommand:
    """An update from an edge body: kind fields given replace those fields, the rest stay."""
    if not state.live:
        return domain.Remove()  # decide refuses it, naming the target
    if body.get("kind", state.kind) != state.kind:
        raise ValidationError("the kind of a target cannot change; remove it and add it again", field="$.kind")
    fields = {k: v for k, v in body.items() if k not in domain.COMMON}
    domain.check_fields(state.kind, fields, partial=True)
    plain, secret = domain.split_secrets(state.kind, fields)
    change: dict[str, Any] = {k: body[k] for k in ("default", "enabled") if k in body}
    if plain:
        change["settings"] = {**state.settings, **plain}
    if secret:
        change["secrets"] = seal(keyring, state.name, {**opened(keyring, state), **secret})
    return domain.Update(event=_convert(domain.TargetUpdated, change))


def view(keyring: Keyring | None, t: domain.Target) -> dict[str, Any]:
    """The target as every answer shows it: secret fields masked, never in clear."""
    out: dict[str, Any] = {"name": t.name, "kind": t.kind, "default": t.default, "enabled": t.enabled,
                           **t.settings}
    try:
        out |= {k: mask(v) for k, v in opened(keyring, t).items()}
    except (KeyringError, KeyringMissing) as exc:
        out |= dict.fromkeys(domain.KINDS[t.kind].secret, "****") if t.kind in domain.KINDS else {}
        out["secrets_error"] = str(exc)
    out["updated_at"] = t.updated_at.isoformat() if t.updated_at else None
    return out


def _convert(cls: type, data: dict[str, Any]) -> Any:
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise codec.validation_error(exc, cls=cls) from None
