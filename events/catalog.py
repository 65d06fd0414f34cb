"""Imports every domain module so that their events are registered before anything decodes."""

from events import (  # noqa: F401
    agents,
    alerts,
    calendar,
    mail,
    providers,
    reports,
    runs,
    targets,
    tasks,
    usage,
    watchdog,
)
