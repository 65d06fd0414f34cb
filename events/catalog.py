"""Imports every domain module so that their events are registered before anything decodes."""

from events import agents, calendar, mail, providers, tasks, usage  # noqa: F401
