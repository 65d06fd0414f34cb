"""Logging for agentledger processes: configured once, in the entry point, to stderr.

Services only log (`logging.getLogger(__name__)`); the CLI alone prints to stdout, so its output
stays machine-readable while logs go to stderr.
"""

from __future__ import annotations

import logging
import sys

from services.settings import SettingsError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def level_of(name: str) -> int:
    """The numeric level of a `log_level` setting; a SettingsError naming it when unknown."""
    upper = str(name).strip().upper()
    if upper not in LEVELS:
        raise SettingsError(
            f"invalid setting log_level {name!r}: expected one of {', '.join(LEVELS)}"
        )
    return int(getattr(logging, upper))


def configure(level: str | int = "INFO") -> None:
    """Route every logger to stderr at `level`; replaces any earlier configuration."""
    numeric = level if isinstance(level, int) else level_of(level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
