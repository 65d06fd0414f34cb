"""What the agent runtime's own session file says, read when an agent outlives its timeout.

openclaw keeps a `sessions.json` per agent; its main session (`agent:<id>:main`) has a `status`,
a `sessionFile` whose `<sessionFile>.lock` holds the pid of the process working on it, and
`compactionCheckpoints`. A session that says `running` while its lock's process is dead is stuck:
the runtime never picks it up again until it says `idle`. A checkpoint from the last 5 minutes
means a compaction is under way, which may rightly take longer than one agent timeout.

Reading never raises: a missing, unreadable or malformed file is an unknown state, and the
dispatcher then only counts timeouts (B3/B4), which is what it did before it could look.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

from services.runtime.files import write_atomic

log = logging.getLogger(__name__)
COMPACTION_WINDOW_S = 300.0


class SessionState(NamedTuple):
    status: str | None  # None: unknown
    lock_pid: int | None
    lock_alive: bool | None  # None: no lock pid to ask about
    compacting: bool

    @property
    def stuck(self) -> bool:
        """Running, but the process holding the lock is gone (a lock without a pid proves
        nothing, so it is not stuck)."""
        return self.status == "running" and self.lock_alive is False


UNKNOWN = SessionState(None, None, None, False)


def main_key(agent_id: str) -> str:
    return f"agent:{agent_id}:main"


def session_path(template: str, agent_id: str) -> Path | None:
    """The session file of `agent_id`; None for an id that would leave its folder."""
    if agent_id in ("", ".", "..") or "/" in agent_id or os.sep in agent_id:
        return None
    return Path(template.format(agent_id=agent_id)).expanduser()


def read_state(path: Path, agent_id: str, *, now: float | None = None) -> SessionState:
    """The main session's state; `now` in epoch seconds (default: the wall clock)."""
    main = _main(_load(path), agent_id)
    if main is None:
        return UNKNOWN
    status = main.get("status")
    pid = _lock_pid(path, main.get("sessionFile"))
    return SessionState(
        status if isinstance(status, str) else None,
        pid,
        None if pid is None else pid_alive(pid),
        _compacting(main.get("compactionCheckpoints"), time.time() if now is None else now),
    )


def revive(path: Path, agent_id: str) -> bool:
    """Set a `running` main session to `idle` (atomically: temp file + rename), so the runtime
    takes the next wake; False when there was nothing to revive or the file cannot be written."""
    data = _load(path)
    main = _main(data, agent_id)
    if main is None or main.get("status") != "running":
        return False
    main["status"] = "idle"
    try:
        write_atomic(path, json.dumps(data, indent=2), keep_mode=True)
    except OSError as exc:
        log.warning("dispatch: cannot revive %s in %s: %s", agent_id, path, exc)
        return False
    return True


def pid_alive(pid: int) -> bool | None:
    """None when it cannot be told (then nothing is concluded from it)."""
    if pid <= 0:  # 0 and negatives address process groups, never one process
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    except OSError:
        return None
    return True


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _main(data: Any, agent_id: str) -> dict[str, Any] | None:
    main = data.get(main_key(agent_id)) if isinstance(data, dict) else None
    return main if isinstance(main, dict) else None


def _lock_pid(path: Path, session_file: Any) -> int | None:
    if not isinstance(session_file, str) or not session_file:
        return None
    lock_path = path.parent / Path(session_file + ".lock").expanduser()  # absolute stays absolute
    lock = _load(lock_path)
    pid = lock.get("pid") if isinstance(lock, dict) else None
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None


def _compacting(checkpoints: Any, now: float) -> bool:
    if not isinstance(checkpoints, list):
        return False
    now_ms = now * 1000
    return any(
        isinstance(cp, dict)
        and isinstance(cp.get("createdAt"), (int, float))
        and now_ms - cp["createdAt"] < COMPACTION_WINDOW_S * 1000
        for cp in checkpoints
    )


