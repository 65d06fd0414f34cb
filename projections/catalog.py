"""Every projection by name: the one place the projector, rebuild and the CLI look them up."""

from __future__ import annotations

from types import ModuleType

from projections import agents, calendar, providers, reports, runs, tasks, watchdog

PROJECTIONS: dict[str, ModuleType] = {
    m.NAME: m for m in (agents, tasks, providers, calendar, reports, runs, watchdog)
}


class UnknownProjection(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get(name: str) -> ModuleType:
    try:
        return PROJECTIONS[name]
    except KeyError:
        raise UnknownProjection(
            f"unknown projection {name!r}; known: {', '.join(sorted(PROJECTIONS))}"
        ) from None


def select(names: list[str] | None) -> list[ModuleType]:
    """The named projections (all when None), refusing unknown names."""
    return [get(n) for n in names] if names else list(PROJECTIONS.values())
