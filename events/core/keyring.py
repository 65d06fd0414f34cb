"""AES-256-GCM for provider API keys, under a keyring of key ids.

A token is `<key_id>:<nonce>:<ciphertext>` (nonce and ciphertext base64url without padding; the
ciphertext carries GCM's 16-byte tag). The associated data is the backend id, so a token copied
onto another backend does not decrypt.

Rules:
- the current key (the last one in the keyring value, or the one marked `*`) encrypts; every key
  in the ring decrypts, so rotation adds a key and old tokens stay readable;
- a key id that the ring lacks is an `UnknownKeyId` naming that key id, never a silent None;
- neither plaintexts nor key bytes ever appear in an exception message or a repr.

Pure apart from the nonce: `encrypt` draws 12 random bytes from `os.urandom` unless the caller
passes `nonce` (tests do, for determinism). A nonce must never repeat under one key.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from events.core.errors import EventError

KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]{22,}$"
_TOKEN = re.compile(TOKEN_PATTERN)
MASK = "****"
MASK_MIN_LENGTH = 20  # below this, first 6 + last 4 would reveal half the key: mask it all


class KeyringError(EventError):
    """Root of the keyring errors; messages name key ids and backends, never secrets."""


class InvalidKeyring(KeyringError, ValueError):
    """The keyring setting cannot be read (its message names the entry, not the key bytes)."""


class UnknownKeyId(KeyringError):
    def __init__(self, key_id: str, known: Iterable[str]) -> None:
        super().__init__(
            f"key id {key_id!r} is not in the keyring (known: {', '.join(known) or 'none'}); "
            "add it to AGENTLEDGER_KEYRING or the key file"
        )
        self.key_id = key_id


class MalformedToken(KeyringError, ValueError):
    """Not `<key_id>:<nonce>:<ciphertext>`; the message never repeats the value."""


class DecryptionFailed(KeyringError):
    """Wrong key, wrong backend (associated data) or tampered ciphertext."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    s = text.strip().rstrip("=").replace("+", "-").replace("/", "_")
    return base64.b64decode(s + "=" * (-len(s) % 4), altchars=b"-_", validate=True)


def key_id_of(token: str) -> str:
    """The key id a token was encrypted with; MalformedToken if it is no token at all."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise MalformedToken("not an encrypted key: expected <key_id>:<nonce>:<ciphertext>")
    return token.split(":", 1)[0]


def is_token(value: str) -> bool:
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def mask(key: str) -> str:
    """First 6 + `****` + last 4; keys shorter than 20 characters are masked entirely."""
    if len(key) < MASK_MIN_LENGTH:
        return MASK
    return f"{key[:6]}{MASK}{key[-4:]}"


def new_key() -> bytes:
    """32 random bytes for a new keyring entry (`agentledger keys rotate`)."""
    return os.urandom(KEY_BYTES)


class Keyring:
    """Key ids -> AES-256-GCM keys; immutable; `current` encrypts."""

    __slots__ = ("_ciphers", "_raw", "current")

    def __init__(self, keys: Mapping[str, bytes], current: str | None = None) -> None:
        if not keys:
            raise InvalidKeyring(
                "the keyring is empty: give at least one key as k1=<base64 32 bytes>"
            )
        for key_id, raw in keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise InvalidKeyring(
                    f"invalid key id {key_id!r}: key ids match [A-Za-z0-9_-]{{1,32}}"
                )
            if len(raw) != KEY_BYTES:
                raise InvalidKeyring(
                    f"key {key_id} has {len(raw)} bytes; AES-256 needs {KEY_BYTES}"
                )
        current = list(keys)[-1] if current is None else current
        if current not in keys:
            raise UnknownKeyId(current, keys)
        self._raw = dict(keys)
        self._ciphers = {k: AESGCM(v) for k, v in keys.items()}
        self.current = current

    @classmethod
    def from_env_value(cls, value: str) -> Keyring:
        """Read `k1=<base64>,k2=<base64>`; the last key is current unless one is marked `*k1=`."""
        keys: dict[str, bytes] = {}
        current: str | None = None
        for n, entry in enumerate(e.strip() for e in value.split(",")):
            if not entry:
                continue
            key_id, sep, encoded = entry.partition("=")
            key_id = key_id.strip()
            if key_id.startswith("*"):
                key_id = key_id[1:].strip()
                if current is not None:
                    raise InvalidKeyring(f"keys {current} and {key_id} are both marked current (*)")
                current = key_id
            if not sep or not key_id:
                raise InvalidKeyring(f"keyring entry {n + 1} is not <key_id>=<base64 32 bytes>")
            if key_id in keys:
                raise InvalidKeyring(f"key id {key_id} appears twice in the keyring")
            try:
                keys[key_id] = _unb64(encoded)
            except (binascii.Error, ValueError):
                raise InvalidKeyring(f"key {key_id} is not valid base64") from None
        return cls(keys, current)

    def to_env_value(self) -> str:
        """The inverse of `from_env_value` (for the key file); this string IS secret."""
        return ",".join(
            f"{'*' if k == self.current and k != list(self._raw)[-1] else ''}{k}={_b64(v)}"
            for k, v in self._raw.items()
        )

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._raw)

    def next_key_id(self) -> str:
        """`k<n+1>` for the highest numbered `k<n>` id (k1 for a ring without such ids)."""
        numbers = [int(k[1:]) for k in self._raw if re.fullmatch(r"k\d+", k)]
        return f"k{max(numbers, default=0) + 1}"

    def with_key(self, key_id: str, key: bytes) -> Keyring:
        """A new ring where `key_id` is added and becomes current; old keys keep decrypting."""
        if key_id in self._raw:
            raise InvalidKeyring(f"key id {key_id} is already in the keyring")
        return Keyring({**self._raw, key_id: key}, key_id)

    def require(self, tokens: Iterable[str]) -> None:
        """Start-up check: every token's key id is in the ring, else UnknownKeyId naming it."""
        for token in tokens:
            key_id = key_id_of(token)
            if key_id not in self._ciphers:
                raise UnknownKeyId(key_id, self._ciphers)

    def needs_rotation(self, token: str) -> bool:
        return key_id_of(token) != self.current

    def encrypt(self, plaintext: str, aad: str, nonce: bytes | None = None) -> str:
        nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"a nonce has {NONCE_BYTES} bytes, got {len(nonce)}")
        sealed = self._ciphers[self.current].encrypt(nonce, plaintext.encode(), aad.encode())
        return f"{self.current}:{_b64(nonce)}:{_b64(sealed)}"

    def decrypt(self, token: str, aad: str) -> str:
        key_id = key_id_of(token)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyId(key_id, self._ciphers)
        _, nonce, sealed = token.split(":")
        try:
            return cipher.decrypt(_unb64(nonce), _unb64(sealed), aad.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionFailed(
                f"the key of {aad} does not decrypt under key id {key_id}: "
                "wrong key, wrong backend or tampered ciphertext"
            ) from None

    def reencrypt(self, token: str, aad: str, nonce: bytes | None = None) -> str:
        """The same plaintext under the current key (rotation); unchanged if already current."""
        if not self.needs_rotation(token):
            return token
        return self.encrypt(self.decrypt(token, aad), aad, nonce)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={list(self._raw)!r}, current={self.current!r})"

    __str__ = __repr__

    def __reduce__(self) -> object:
        raise TypeError("a Keyring is not picklable: it holds secret keys")
