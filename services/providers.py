"""The providers command path: load backends from PROVIDERS, decide, append with OCC.

Used in-process by the gateway's admin API and by `agentledger keys rotate` (backends change
rarely, so there is no separate command service). `load` folds the stream with the same pure
`events.providers.evolve` as every other reader and remembers each backend's last seq (every
subject counts, even a no-op or an undecodable payload: that is what JetStream checks an append
against). `execute` decides on that state and appends with the expected seq; a lost race reloads
and decides again, a bounded number of times, then answers Conflict.

Keys: `encrypt_key` is the only place a plaintext API key becomes a token; plaintexts are never
logged, and every error names the backend, never the key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from nats.js.client import JetStreamContext

from events import providers as domain
from events.core import reader
from events.core.client import EventClient
from events.core.errors import Conflict, EventError
from events.core.keyring import Keyring, UnknownKeyId, key_id_of
from events.core.streams import stream_name

log = logging.getLogger(__name__)

STREAM = stream_name("providers")
RETRIES = 5

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def load(js: JetStreamContext, backend_id: str | None = None) -> dict[str, tuple[domain.Backend, int]]:
    """Every backend (or one) as folded from the stream, with its last seq; deleted ones included."""
    return await reader.fold(js, "providers", domain.initial_state, domain.evolve, backend_id)


async def execute(
    client: EventClient, backend_id: str, make: Callable[[domain.Backend], domain.ProviderCommand],
    *, clock: Clock = utc_now, actor: str | None = None,
) -> tuple[domain.Backend, list[domain.ProviderEvent], list[int]]:
    """Decide `make(state)` on the backend's current state and append; retried on Conflict.

    Returns the state after the events, the events and their seqs. Domain rule errors
    (NotFound, AlreadyExists, NotEncrypted) propagate for the caller to map.
    """
    headers = {"Agl-Actor": actor} if actor else None
    for attempt in range(1, RETRIES + 1):
        state, seq = (await load(client.js, backend_id)).get(backend_id, (domain.initial_state(backend_id), 0))
        now = clock()
        events = domain.decide(make(state), state, now)
        if not events:
            return state, [], []
        try:
            seqs = await client.append(backend_id, events, expected_seq=seq, headers=headers)
        except Conflict:
            if attempt == RETRIES:
                raise
            log.info("providers: backend %s moved since seq %d; deciding again (attempt %d)",
                     backend_id, seq, attempt + 1)
            continue
        for event in events:
            state, _ = domain.evolve(state, event, now)
        return state, events, seqs
    raise Conflict(f"backend {backend_id}: still conflicting after {RETRIES} attempts")  # pragma: no cover


def encrypt_key(keyring: Keyring | None, backend_id: str, plaintext: str) -> str:
    if keyring is None:
        raise KeyringMissing("no keyring configured: set AGENTLEDGER_KEYRING or keyring_file to store backend keys")
    return keyring.encrypt(plaintext, aad=backend_id)


class KeyringMissing(EventError):
    """A key must be encrypted but no keyring is configured."""


def key_errors(keyring: Keyring | None, backends: dict[str, tuple[domain.Backend, int]]) -> dict[str, str]:
    """Live backends whose key id the keyring lacks -> an error naming backend and key id.

    Checked at start to name them, never to refuse the start: such a backend stays out of
    routing until its key is replaced or it is deleted through the admin API.
    """
    found: dict[str, str] = {}
    for backend_id, (b, _) in sorted(backends.items()):
        if not (b.live and b.api_key):
            continue
        key_id = key_id_of(b.api_key)
        if keyring is None or key_id not in keyring.key_ids:
            found[backend_id] = f"backend {backend_id}: {UnknownKeyId(key_id, keyring.key_ids if keyring else [])}"
    return found


async def rotate_all(client: EventClient, keyring: Keyring, *, clock: Clock = utc_now) -> dict[str, bool]:
    """Re-encrypt every live backend's key under the keyring's current key id by `key_rotated`.

    Returns backend id -> whether it got an event (a backend already current gets none), so the
    caller never counts a backend as re-encrypted that was not.
    """
    done: dict[str, bool] = {}
    for backend_id, (state, _) in sorted((await load(client.js)).items()):
        if not state.live or not state.api_key:
            continue

        def rotate(s: domain.Backend) -> domain.ProviderCommand:
            return domain.RotateKey(api_key=keyring.reencrypt(s.api_key, aad=s.id), reason="rotation")

        after, events, _ = await execute(client, backend_id, rotate, clock=clock, actor="keys-rotate")
        done[backend_id] = bool(events)
        log.info("providers: backend %s key %s under key id %s", backend_id,
                 "re-encrypted" if events else "already", after.key_id)
    return done
