"""Agent classes: the thresholds of the HEARTBEAT.md rules, per class, as the seeds give them.

The seed's templates (v1.1 per agent, v2.0 stability template, BIZ-25 cron plan) put each
agent in one of three classes and give every rule a threshold per class. They were rules the
agent followed about itself; here the watchdog applies them, so a stuck agent cannot forget them.

Precedence, later wins: these defaults < settings `agent_classes` (per class) < the agent's own
registration (`agents.<id>.registered|updated`: heartbeat, stall, recovery, rounds, dependency
wait). `for_agent` is the one place that merges them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from croniter import croniter

from events.agents import CLASS_DEFAULTS

Seconds = Annotated[int, msgspec.Meta(gt=0)]
Notify = Literal["coo", "creator", "owner"]
CLASS_NAMES = ("high_frequency", "dev", "business")
UNKNOWN_CLASS = "business"  # an agent known only by its heartbeats gets the strictest limits


class ClassRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One class's thresholds; every field can be overridden per class and (most) per agent."""

    heartbeat_cron: str  # scheduled heartbeat wakes (BIZ-25: */10 high-frequency, */15 others)
    heartbeat_interval_s: Seconds
    stall_warning_s: Seconds  # heartbeat silence while holding a task -> suspected, one extra wake
    recovery_s: Seconds  # silence -> the recovery ladder (45 min: "自动恢复")
    task_timeout_s: Seconds  # a task in progress without progress (v2.0: 60/120/90 min)
    stuck_s: Seconds  # seed 002 STUCK_TIMEOUT_MINUTES: an open run without a log line
    max_rounds: Seconds
    round_warning_ratio: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.8
    dependency_wait_s: Seconds
    backlog_limit: Annotated[int, msgspec.Meta(ge=0)] = 5  # "积压告警: 待办 > 5"
    notify: tuple[Notify, ...]  # who hears of a recovery (seed's table per class)

    def as_row(self, name: str) -> dict[str, Any]:
        return {"class": name, **msgspec.structs.asdict(self)}


# the five timings a registration carries come from `events.agents.CLASS_DEFAULTS` (one table);
# the rest are the watchdog's own
_OWN: dict[str, dict[str, Any]] = {
    "high_frequency": {"heartbeat_cron": "*/10 * * * *", "task_timeout_s": 3600, "notify": ("coo",)},
    "dev": {"heartbeat_cron": "*/15 * * * *", "task_timeout_s": 7200, "notify": ("coo", "creator")},
    "business": {"heartbeat_cron": "*/15 * * * *", "task_timeout_s": 5400, "notify": ("creator",)},
}
DEFAULTS: dict[str, ClassRules] = {
    name: ClassRules(**CLASS_DEFAULTS[name]._asdict(), stuck_s=600, **own) for name, own in _OWN.items()
}
# what an agent's registration may set for itself (events.agents.AgentRegistered)
AGENT_FIELDS = (
    "heartbeat_interval_s", "stall_warning_s", "recovery_s", "max_rounds", "dependency_wait_s",
)


class ClassError(ValueError):
    """An override names an unknown class or field, or a value out of range; the message says which."""


def table(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, ClassRules]:
    """The classes in force: the defaults with the settings' per-class overrides applied."""
    out = dict(DEFAULTS)
    for name, fields in (overrides or {}).items():
        if name not in DEFAULTS:
            raise ClassError(f"agent_classes: unknown class {name!r}; known: {', '.join(CLASS_NAMES)}")
        merged = {**msgspec.structs.asdict(DEFAULTS[name]), **fields}
        try:
            out[name] = msgspec.convert(merged, ClassRules, strict=False)
        except msgspec.ValidationError as exc:
            text, _, where = str(exc).partition(" - at `$.")
            field = f"{name}.{where.rstrip('`')}" if where else name
            raise ClassError(f"agent_classes.{field}: {text}") from None
        if not croniter.is_valid(out[name].heartbeat_cron):
            raise ClassError(f"agent_classes.{name}.heartbeat_cron: invalid cron expression "
                             f"{out[name].heartbeat_cron!r}")
    return out


def for_agent(classes: Mapping[str, ClassRules], agent_class: str | None, **agent: int | None) -> ClassRules:
    """One agent's rules: its class's (business when unknown), then what its registration set.

    A registration carries the built-in class defaults when it named none (history keeps what
    was in force), so a value equal to the built-in default is not the agent's own choice and
    the settings' class override wins over it.
    """
    name = agent_class if agent_class in classes else UNKNOWN_CLASS
    base, builtin = classes[name], DEFAULTS[name]
    own = {
        k: v for k, v in agent.items()
        if k in AGENT_FIELDS and v is not None and v != getattr(builtin, k)
    }
    return msgspec.structs.replace(base, **own) if own else base
