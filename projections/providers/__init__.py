"""The providers read model: the projection module (`apply`) and its SQL (`queries`)."""

from projections.providers.apply import (
    NAME,
    SOURCES,
    apply,
)
from projections.providers.queries import (
    DDL,
    QUERIES,
)

__all__ = [
    "DDL",
    "NAME",
    "QUERIES",
    "SOURCES",
    "apply",
]
