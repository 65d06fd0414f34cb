"""Errors of the event layer, one small class per rule so callers can map them to answers."""

from __future__ import annotations


class EventError(Exception):
    """Root of every error raised by `events`."""


class ValidationError(EventError, ValueError):
    """Input that breaks the schema or the subject grammar; `field` is a JSON path like `$.status`."""

    def __init__(self, message: str, field: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.index = index

    def at_index(self, index: int) -> ValidationError:
        """The same error, located inside an array of inputs."""
        return ValidationError(self.message, self.field, index)

    def __str__(self) -> str:
        where = f"[{self.index}]" if self.index is not None else ""
        return f"{where}{' ' if where else ''}{self.message}"


class UnknownEvent(ValidationError):
    """The subject names a domain or event that the registry does not know."""


class Conflict(EventError):
    """An optimistic append lost: the aggregate moved on since it was read (JetStream 10071)."""

    def __init__(self, message: str, last_seq: int | None = None) -> None:
        super().__init__(message)
        self.last_seq = last_seq


class Unavailable(EventError):
    """NATS or JetStream cannot take the write now; nothing was stored (or the ack is unknown)."""


class Forbidden(EventError):
    """The caller may not write this (the write policy, events.core.policy); the message names
    the rule."""

    def __init__(self, message: str, rule: object | None = None) -> None:
        super().__init__(message)
        self.rule = rule
