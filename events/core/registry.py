"""Event base class and the registry mapping (domain, event name) to its msgspec Struct.

A concrete event declares `name`; its domain comes from the per-domain base class. Defining the
class registers it, so an event type cannot exist without being decodable from its subject.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from events.core.errors import UnknownEvent
from events.core.policy import Rule, Writers
from events.core.subjects import DOMAINS

_BY_KEY: dict[tuple[str, str], type[Event]] = {}


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every payload. Readers tolerate unknown fields; the edge refuses them (codec)."""

    domain: ClassVar[str] = ""
    name: ClassVar[str] = ""
    writers: ClassVar[Writers] = frozenset()  # who may write it (events.core.policy)
    written_by: ClassVar[str] = ""  # how a person should say it in a refusal, when not the names

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return
        if cls.domain not in DOMAINS:
            raise TypeError(f"{cls.__name__}: domain {cls.domain!r} is not one of {DOMAINS}")
        if not cls.writers:
            raise TypeError(f"{cls.__name__}: declare its writers (events.core.policy)")
        key = (cls.domain, cls.name)
        if key in _BY_KEY and _BY_KEY[key].__qualname__ != cls.__qualname__:
            raise TypeError(f"event {cls.domain}.{cls.name} is defined twice")
        _BY_KEY[key] = cls


def lookup(domain: str, name: str) -> type[Event]:
    try:
        return _BY_KEY[(domain, name)]
    except KeyError:
        known = sorted(n for d, n in _BY_KEY if d == domain)
        raise UnknownEvent(
            f"unknown event {domain}.{name}; known {domain} events: {', '.join(known) or 'none'}",
            field="$.subject",
        ) from None


def events_of(domain: str) -> dict[str, type[Event]]:
    return {n: t for (d, n), t in _BY_KEY.items() if d == domain}


def rules() -> dict[tuple[str, str], Rule]:
    """The write policy of every registered event (import `events.catalog` first)."""
    return {
        key: Rule(key[0], key[1], t.writers, t.written_by) for key, t in sorted(_BY_KEY.items())
    }
