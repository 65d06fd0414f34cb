"""The watchdog domain: agent classes and their thresholds, the decisions, and the pure rules.

The rules the seed's HEARTBEAT.md files asked agents to apply to themselves fail exactly when an
agent is stuck; here a service applies them from the streams (`services.watchdog`).
"""

from events.watchdog.classes import DEFAULTS, ClassError, ClassRules, for_agent, table
from events.watchdog.decide import Decision, Policy, decide, rules_of
from events.watchdog.fleet import Fleet
from events.watchdog.model import (
    AnalystWoken,
    BacklogNoticed,
    DependencyWaited,
    HeartbeatScheduled,
    RoundPaused,
    RoundWarned,
    Stuck,
    Suspected,
    TimedOut,
    WatchdogEvent,
    WatchdogEvents,
)

__all__ = [
    "DEFAULTS", "AnalystWoken", "BacklogNoticed", "ClassError", "ClassRules", "Decision",
    "DependencyWaited", "Fleet", "HeartbeatScheduled", "Policy", "RoundPaused", "RoundWarned",
    "Stuck", "Suspected", "TimedOut", "WatchdogEvent", "WatchdogEvents", "decide", "for_agent",
    "rules_of", "table",
]
