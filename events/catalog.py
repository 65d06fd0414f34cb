"""Imports every domain module so that their events are registered before anything decodes."""

from events import agents  # noqa: F401
from events import providers, usage  # noqa: F401
from events import mail, tasks  # noqa: F401
