"""Credentials in the home: who each process is when it connects to NATS or calls the gateway.

`<home>/credentials/` (0700) holds one JSON file per principal (0600): the admin, one per
service, a reader for analysts, and `agents/<id>.json` per agent. A file carries the NATS user and
password (the server config keeps only their bcrypt hash) and, for agents and readers, the HTTP
token. Tokens are `agl_<kind>_<id>.<nonce>.<signature>`: an HMAC of the principal and a random
nonce under the gateway's token secret (`token.secret`), so a forged token is refused without
reading any file. A token is also checked against the principal's file (`TokenBook`): deleting it
(`agentledger agents revoke ID`) or issuing again (`agents add ID`, a new nonce) revokes that one
token, and rotating the secret revokes every token at once. Tokens issued before the nonce
(`agl_<kind>_<id>.<signature>`) keep working until their file is issued again.

Processes find their own file by name (`url_for(settings, "projector")`); nothing needs a flag.
A home without credentials (an external NATS the operator secures, or the test suite's accounts)
connects with the URL as given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import bcrypt
import msgspec

from events.core.policy import ADMIN, AGENT, READER, SERVICES, Principal
from events.core.subjects import check_id
from services.runtime.files import write_atomic

FIXED = (ADMIN, READER, *SERVICES)
BCRYPT_COST = 11  # what nats-server's own `nats server passwd` uses
_TOKEN = re.compile(r"agl_(agent|reader|admin)_([A-Za-z0-9_-]{1,128})\.(?:([A-Za-z0-9_-]{22})\.)?[A-Za-z0-9_-]{43}")


class CredentialsError(Exception):
    """A credentials file is missing or unreadable; the message says which and what to do."""


class Credential(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    kind: str
    id: str = ""
    user: str
    password: str
    # bcrypt of the password, made once at issue: the server config needs only this, and bcrypt
    # is slow on purpose, so every config written later (up, agents add, cluster) reuses it
    password_hash: str | None = None
    token: str | None = None

    @property
    def principal(self) -> Principal:
        return Principal(self.kind, self.id)


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def folder(home: Path) -> Path:
    return home / "credentials"


def path_of(home: Path, name: str) -> Path:
    """`admin`, a service name, `reader`, or `agent:<id>`."""
    if name.startswith(f"{AGENT}:"):
        return folder(home) / "agents" / f"{check_id(name.split(':', 1)[1], 'agent_id')}.json"
    return folder(home) / f"{name}.json"


def secure_home(home: Path) -> None:
    """The home and the credentials folder are the owner's alone (0700)."""
    for d in (home, folder(home), folder(home) / "agents"):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)


def token_secret(home: Path) -> bytes:
    """The gateway's token secret, made on first use."""
    path = folder(home) / "token.secret"
    if not path.exists():
        secure_home(home)
        write_atomic(path, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() + "\n")
    return base64.urlsafe_b64decode(path.read_bytes().strip())


def sign(secret: bytes, kind: str, ident: str, nonce: str = "") -> str:
    message = f"{kind}:{ident}:{nonce}" if nonce else f"{kind}:{ident}"
    mac = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    middle = f"{nonce}." if nonce else ""
    return f"agl_{kind}_{ident}.{middle}{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def verify(secret: bytes, token: str) -> Principal | None:
    """The principal a token was issued to, or None (constant-time over the signature)."""
    m = _TOKEN.fullmatch(token)
    if m is None:
        return None
    kind, ident, nonce = m.group(1), m.group(2), m.group(3) or ""
    if not hmac.compare_digest(sign(secret, kind, ident, nonce).encode(), token.encode()):
        return None
    return Principal(kind, ident)


def issue(home: Path, name: str) -> Credential:
    """Make (or replace) the credential `name`; agents and readers get an HTTP token too."""
    secure_home(home)
    kind, _, ident = name.partition(":")
    user = Principal(kind, ident).nats_user
    nonce = secrets.token_urlsafe(16)  # 22 characters: a token of its own, revocable alone
    token = sign(token_secret(home), kind, ident or kind, nonce) if kind in (AGENT, READER) else None
    password = secrets.token_urlsafe(24)
    cred = Credential(
        kind=kind, id=ident, user=user, password=password, password_hash=bcrypt_hash(password),
        token=token,
    )
    write_atomic(path_of(home, name), msgspec.json.format(msgspec.json.encode(cred)).decode() + "\n")
    return cred


def load(home: Path, name: str) -> Credential | None:
    path = path_of(home, name)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return msgspec.json.decode(data, type=Credential)
    except msgspec.DecodeError as exc:
        raise CredentialsError(f"{path} is not a credentials file: {exc}") from None


def ensure(home: Path) -> dict[str, Credential]:
    """Every fixed principal's credential, made where missing (first `up`)."""
    secure_home(home)
    return {name: load(home, name) or issue(home, name) for name in FIXED}


def agents(home: Path) -> list[Credential]:
    out = []
    for p in sorted((folder(home) / "agents").glob("*.json")):
        cred = load(home, f"{AGENT}:{p.stem}")
        if cred is not None:
            out.append(cred)
    return out


def with_user(url: str, cred: Credential | None) -> str:
    """`url` carrying `cred` as user:password, unless it has credentials of its own."""
    if cred is None:
        return url
    out = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        if parts.username or not parts.hostname:
            out.append(one.strip())
            continue
        netloc = f"{quote(cred.user, safe='')}:{quote(cred.password, safe='')}@{parts.netloc}"
        out.append(urlunsplit(parts._replace(netloc=netloc)))
    return ",".join(out)


def name_of(principal: Principal) -> str:
    """The credentials name of a principal (`agent:<id>`, `reader`, ...), as `path_of` takes it."""
    return f"{AGENT}:{principal.id}" if principal.kind == AGENT else principal.kind


def revoke(home: Path, name: str) -> bool:
    """Delete the credential `name`: its NATS user leaves the next server config, its token stops
    at the gateway's next request. False when there was none."""
    try:
        path_of(home, name).unlink()
    except FileNotFoundError:
        return False
    return True


class TokenBook:
    """The tokens the credentials files hold now, for the gateway: a correctly signed token whose
    file is gone (revoked) or holds another token (issued again) is refused. A file is read again
    only when it changed (stat per request)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._seen: dict[Path, tuple[tuple[int, int, int], str | None]] = {}

    def current(self, principal: Principal, token: str) -> bool:
        path = path_of(self.home, name_of(principal))
        try:
            st = path.stat()
        except OSError:
            self._seen.pop(path, None)
            return False
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        seen = self._seen.get(path)
        if seen is None or seen[0] != key:
            try:
                cred = load(self.home, name_of(principal))
            except CredentialsError:
                return False
            seen = (key, cred.token if cred else None)
            self._seen[path] = seen
        return seen[1] is not None and hmac.compare_digest(seen[1].encode(), token.encode())
