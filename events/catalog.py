"""Imports every domain module so that their events are registered before anything decodes."""

from events import agents, mail, providers, tasks, usage  # noqa: F401
