"""Imports every domain module so that their events are registered before anything decodes."""

from events import agents, alerts, calendar, mail, providers, reports, targets, tasks, usage  # noqa: F401
