"""The tasks read model: the projection module (`apply`) and its SQL (`queries`)."""

from projections.tasks.apply import (
    NAME,
    SOURCES,
    apply,
    load_messages,
    load_tasks,
)
from projections.tasks.queries import (
    DDL,
    QUERIES,
)

__all__ = [
    "DDL",
    "NAME",
    "QUERIES",
    "SOURCES",
    "apply",
    "load_messages",
    "load_tasks",
]
