"""JSON codec for event payloads.

Two decoders on purpose: `decode` is the reader's (tolerates unknown fields so old readers survive
new writers), `decode_strict` is the edge's (refuses unknown fields so a typo is caught where a
person sees it). Decoders are built once per type and reused.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import msgspec
import msgspec.inspect

from events import catalog  # noqa: F401  (registers every domain's events)
from events.core.errors import ValidationError
from events.core.registry import Event, lookup
from events.core.subjects import Subject, parse

_encoder = msgspec.json.Encoder()
_PATH = re.compile(r" - at `(\$[^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def encode_checked(event: Event) -> bytes:
    """Encode, then decode as every reader will: a Struct built in Python is not validated, so
    `AgentHeartbeat(round="3")` would otherwise reach the stream and be rejected by every reader.
    Raises ValidationError naming the field path."""
    cls = type(event)
    try:
        data = _encoder.encode(event)
    except UnicodeEncodeError as exc:
        raise ValidationError(f"a string of {cls.__name__} cannot be encoded as UTF-8: {exc.reason}",
                              field="$") from None
    try:
        _decoder(cls).decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise validation_error(exc, cls=cls) from None
    return data


@cache
def _decoder(cls: type[Event]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(cls)


def validation_error(
    exc: msgspec.ValidationError | msgspec.DecodeError, prefix: str = "$", cls: type | None = None
) -> ValidationError:
    """Turn msgspec's message into a ValidationError whose `field` is the JSON path."""
    text = str(exc)
    field: str | None = None
    if m := _PATH.search(text):
        field = m.group(1)
        text = text[: m.start()]
    if m := _MISSING.search(text):
        field = f"{field or '$'}.{m.group(1)}"
    if cls is not None and field and text.startswith("Invalid enum value"):
        text += _allowed(cls, field.removeprefix("$."))
    if field is not None and prefix != "$":
        field = prefix + field[1:]
    return ValidationError(f"{text}{f' at {field}' if field else ''}", field=field or prefix)


def _allowed(cls: type, name: str) -> str:
    """`; allowed: a, b` for a top-level Literal field, so the person sees the valid choices."""
    info = msgspec.inspect.type_info(cls)
    for f in getattr(info, "fields", ()):
        if f.encode_name == name:
            types = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
            values = [v for t in types if isinstance(t, msgspec.inspect.LiteralType) for v in t.values]
            if values:
                return f"; allowed: {', '.join(map(str, values))}"
    return ""


def event_type(subject: str | Subject) -> type[Event]:
    s = parse(subject) if isinstance(subject, str) else subject
    return lookup(s.domain, s.event)


def decode(subject: str, data: bytes) -> Event:
    """Decode a stored payload; raises ValidationError naming the field path."""
    cls = event_type(subject)
    try:
        return _decoder(cls).decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise validation_error(exc, cls=cls) from None


def decode_strict(subject: str, data: Any, prefix: str = "$") -> Event:
    """Validate an object from the edge (HTTP, CLI): unknown fields are errors.

    `data` is an already-parsed JSON value; `prefix` locates it in the caller's document
    (e.g. `$[2].data`) so the error names the field a person typed.
    """
    cls = event_type(subject)
    if not isinstance(data, dict):
        raise ValidationError(
            f"expected a JSON object for {subject}, got {type(data).__name__}", field=prefix
        )
    allowed = set(cls.__struct_encode_fields__)
    for key in data:
        if key not in allowed:
            raise ValidationError(
                f"unknown field {key!r} for {cls.domain}.{cls.name}; "
                f"allowed: {', '.join(sorted(allowed)) or 'none'}",
                field=f"{prefix}.{key}",
            )
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, prefix, cls) from None
