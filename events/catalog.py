"""Imports every domain module so that their events are registered before anything decodes."""

from events import agents, mail, providers, runs, tasks, usage, watchdog  # noqa: F401
