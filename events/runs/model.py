"""Run logs (seed 002's `main_logs`): one run per agent attempt on `runs.<run_id>.<event>`.

Invariants:
- a run is `started` once (task, agent, log type), may send `following` lines while alive, and is
  `finished` once as success, failed or skipped with its duration and level;
- the log text is capped as the seed caps `run_content`: past 100,000 characters only the last
  80,000 are kept (`cap`), so the newest lines, where failures are, survive;
- an agent writes its own runs; the dispatcher writes one per attempt it starts.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from events.core.bounds import INT32_MAX
from events.core.policy import Writers, writers
from events.core.registry import Event

MAX_CONTENT = 100_000
KEEP_CONTENT = 80_000
Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
Line = Annotated[str, msgspec.Meta(max_length=MAX_CONTENT)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
RunStatus = Literal["success", "failed", "skipped"]
Level = Literal["debug", "info", "warning", "error"]


def cap(text: str) -> str:
    return text[-KEEP_CONTENT:] if len(text) > MAX_CONTENT else text


class RunEvent(Event, frozen=True, kw_only=True):
    domain: ClassVar[str] = "runs"
    writers: ClassVar[Writers] = writers("agent", "dispatcher", "admin")
    written_by: ClassVar[str] = "the agent whose run it is, or the dispatcher"


class RunStarted(RunEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "started"
    agent_id: Id
    task_id: Id | None = None
    log_type: Text = "task"
    # an attempt the dispatcher runs: its number on the task and the process id, so a restarted
    # dispatcher can find the process again
    attempt: Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)] | None = None
    pid: Annotated[int, msgspec.Meta(gt=0, le=INT32_MAX)] | None = None


class RunFollowing(RunEvent, frozen=True, kw_only=True):
    """Progress while the run is alive; also what keeps the stuck rule away."""

    name: ClassVar[str] = "following"
    line: Line = ""


class RunFinished(RunEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "finished"
    status: RunStatus
    duration_ms: Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)] = 0
    level: Level = "info"
    content: Line = ""
    message: Text = ""


RunEvents = RunStarted | RunFollowing | RunFinished
