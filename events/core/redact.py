"""Secret-looking fields taken out of payloads that are kept for people to read (rejects).

A rejected message was refused by its schema, so nothing guarantees that a key in it is
encrypted: someone may have raw-published `{"api_key": "sk-..."}`. What we keep of it must still
show what was wrong, so only the values of secret-looking fields go, at any depth; the rest stays.

- field names match case-insensitively, ignoring `_` and `-`: `key`, `authorization`, `auth`,
  `cookie`, `credentials`, `passwd`, `pwd`, or anything ending in `apikey`, `token`, `secret`,
  `password`, `privatekey`, `accesskey`, `secretkey` (`prompt_tokens` and `key_id` do not);
- a JSON payload is re-encoded only when something was redacted, so clean ones stay byte-exact;
- a payload that is not JSON (truncated, garbage) gets the same names redacted by pattern
  (`"api_key": "…"`, `api_key=…`): best effort on text that no schema describes.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

REDACTED = "[redacted]"
_EXACT = frozenset({"key", "authorization", "auth", "cookie", "credentials", "passwd", "pwd"})
_SUFFIXES = ("apikey", "token", "secret", "password", "privatekey", "accesskey", "secretkey")
_NAME = r"[A-Za-z0-9_-]*"
_TEXT_FIELD = re.compile(
    rb"""(?P<head>["']?(?P<name>""" + _NAME.encode() + rb""")["']?\s*[:=]\s*)"""
    rb"""(?P<value>"(?:[^"\\]|\\.)*"?|'[^']*'?|[^\s,;&}\]]+)"""
)


def secret_name(name: str) -> bool:
    n = name.lower().replace("_", "").replace("-", "")
    return n in _EXACT or n.endswith(_SUFFIXES)


def redact_value(value: Any) -> tuple[Any, bool]:
    """`value` with secret-looking fields replaced at any depth, and whether any was."""
    if isinstance(value, dict):
        changed = False
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and secret_name(k):
                out[k], changed = REDACTED, True
            else:
                out[k], c = redact_value(v)
                changed |= c
        return out, changed
    if isinstance(value, list):
        items = [redact_value(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    return value, False


def redact_payload(data: bytes) -> bytes:
    """The payload without secret values; unchanged (the same bytes) when it holds none."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _redact_text(data)
    redacted, changed = redact_value(parsed)
    return orjson.dumps(redacted) if changed else data


def redact_text(text: str) -> str:
    """For messages about a payload (errors, log lines): `name: value` pairs of secret names."""
    return _redact_text(text.encode()).decode(errors="replace")


def _redact_text(data: bytes) -> bytes:
    def sub(m: re.Match[bytes]) -> bytes:
        if not secret_name(m.group("name").decode(errors="replace")):
            return m.group(0)
        return m.group("head") + b'"' + REDACTED.encode() + b'"'

    return _TEXT_FIELD.sub(sub, data)
