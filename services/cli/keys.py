"""`agentledger keys rotate`: add a key to the keyring and re-encrypt every backend under it.

Order matters, so that no key is ever lost: the new keyring is written first (the key file, or
the new `AGENTLEDGER_KEYRING` value printed on stdout), then every live backend gets a
`key_rotated` event holding its key under the new key id. Old events keep their old key id and
still decrypt, because rotation only adds keys. Run it again after an interruption: backends
already under the current key get no event.

A running gateway whose keyring comes from `keyring_file` reads the file again when it meets a
key id it does not know, so rotation needs no restart. A keyring given as `AGENTLEDGER_KEYRING`
cannot change under a running process: `keys rotate --stage` adds the key without using it (the
current key stays), restart every gateway on that ring, then `keys rotate` switches to the staged
key and re-encrypts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from events.core.client import EventClient
from events.core.errors import EventError
from events.core.keyring import Keyring, new_key
from services import providers
from services.cli import output as show
from services.runtime.connection import connect_once
from services.runtime.files import write_atomic
from services.settings import Settings, SettingsError


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    k = sub.add_parser("keys", parents=[common], help="manage the keyring of provider API keys")
    verbs = k.add_subparsers(dest="verb", required=True, metavar="VERB")
    c = verbs.add_parser("rotate", parents=[common], help="add a key id and re-encrypt every backend under it",
                         description=__doc__)
    c.add_argument("--keyring-file", default=None, metavar="FILE",
                   help="write the new keyring here (default: the keyring_file setting; without one, "
                        "the new AGENTLEDGER_KEYRING value is printed on stdout)")
    c.add_argument("--stage", action="store_true",
                   help="only add the new key, not yet used: restart the gateways on the new ring, then "
                        "run `keys rotate` again to switch to it and re-encrypt")
    c.set_defaults(run=rotate)


def _ring(entries: dict[str, str], current: str) -> Keyring:
    return Keyring.from_env_value(",".join(f"{'*' if k == current else ''}{k}={v}" for k, v in entries.items()))


NO_KEYRING = (
    "no keyring configured: `keys rotate` adds a key to the keyring your gateways use, so point "
    "AGENTLEDGER_KEYRING_FILE (keyring_file) or AGENTLEDGER_KEYRING at that keyring and run it again; "
    "nothing was changed. For a first keyring, write `k1=<base64 of 32 random bytes>` to a file "
    "readable by its owner only and set keyring_file to it"
)


def next_ring(old: Keyring | None, stage: bool) -> Keyring:
    """The ring after this step: a new key (current, or staged), or the staged key made current.

    Without a ring there is nothing to rotate: a fresh `k1` would shadow the `k1` the stored
    backends were encrypted under, and no gateway could decrypt them any more.
    """
    if old is None:
        raise NoKeyring(NO_KEYRING)
    entries = dict(e.lstrip("*").split("=", 1) for e in old.to_env_value().split(","))
    staged = old.key_ids[old.key_ids.index(old.current) + 1:]
    if stage:
        if staged:
            raise KeysError(f"key {staged[-1]} is already staged; run `keys rotate` to switch to it")
        added = old.with_key(old.next_key_id(), new_key())
        entries = dict(e.lstrip("*").split("=", 1) for e in added.to_env_value().split(","))
        return _ring(entries, old.current)
    if staged:
        return _ring(entries, staged[-1])
    return old.with_key(old.next_key_id(), new_key())


class KeysError(EventError):
    """The keyring cannot take this step (the message says which key and why)."""


class NoKeyring(KeysError, SettingsError):
    """Nothing to rotate: no keyring is configured (a setting is missing: exit code 2)."""


def write_keyring(path: Path, ring: Keyring) -> None:
    """Atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, ring.to_env_value() + "\n")


async def rotate(args: argparse.Namespace, settings: Settings) -> int:
    ring = next_ring(settings.load_keyring(), args.stage)  # refused before anything is written
    target = args.keyring_file or settings.keyring_file
    if target:
        write_keyring(Path(target).expanduser(), ring)
        show.note(f"keyring written to {target}: key ids {', '.join(ring.key_ids)}, current {ring.current}")
    else:
        show.note(f"new keyring (key ids {', '.join(ring.key_ids)}, current {ring.current}); "
                  "set it as AGENTLEDGER_KEYRING and restart the gateways on it:")
        show.line(ring.to_env_value())
    if args.stage:
        show.note(f"key {ring.key_ids[-1]} staged; gateways on AGENTLEDGER_KEYRING need a restart on this "
                  "keyring (a keyring_file is re-read by itself), then run `agentledger keys rotate` "
                  "to switch to it and re-encrypt the backends")
        return 0
    nc = await connect_once(settings.url_as(settings.identity))
    try:
        done = await providers.rotate_all(EventClient(nc, timeout=settings.request_timeout_s), ring)
    finally:
        await nc.close()
    show.note(rotation_summary(done, ring.current))
    return 0


def rotation_summary(done: dict[str, bool], current: str) -> str:
    """Counts only what happened: backends that got a `key_rotated` event, and those already current."""
    moved = sorted(b for b, changed in done.items() if changed)
    kept = sorted(b for b, changed in done.items() if not changed)
    parts = [f"{len(moved)} backends re-encrypted under key id {current}"
             + (f": {', '.join(moved)}" if moved else "")]
    if kept:
        parts.append(f"{len(kept)} already under it: {', '.join(kept)}")
    return "; ".join(parts)
