"""What the agent runtime's own session file says: stuck, compacting, revived."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from services.dispatcher import session as session_file
from tests.services.dispatcher.stack import AGENT

# --- the agent runtime's session file ---------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def sessions_json(
    tmp_path: Path,
    *,
    status: str = "running",
    pid: int | None = None,
    checkpoints: list[Any] | None = None,
    session_file: str | None = None,
) -> Path:
    if session_file is None:
        session_file = str(tmp_path / "s1.jsonl")
    if pid is not None:
        lock = Path(session_file) if Path(session_file).is_absolute() else tmp_path / session_file
        Path(f"{lock}.lock").write_text(json.dumps({"pid": pid}))
    main = {
        "status": status,
        "sessionFile": session_file,
        "compactionCheckpoints": checkpoints or [],
    }
    path = tmp_path / "sessions.json"
    path.write_text(json.dumps({f"agent:{AGENT}:main": main, "agent:other:main": {"x": 1}}))
    return path


def test_an_unreadable_session_file_is_an_unknown_state_never_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert session_file.read_state(missing, AGENT) == session_file.UNKNOWN
    corrupt = tmp_path / "corrupt.json"
    for text in ("{not json", "[1, 2]", '{"agent:coder:main": "running"}', "{}"):
        corrupt.write_text(text)
        state = session_file.read_state(corrupt, AGENT)
        assert state == session_file.UNKNOWN and not state.stuck and not state.compacting
    assert not session_file.revive(missing, AGENT) and not session_file.revive(
        corrupt, AGENT
    )


def test_a_running_session_is_stuck_only_when_its_lock_names_a_dead_process(tmp_path: Path) -> None:
    dead = session_file.read_state(sessions_json(tmp_path, pid=dead_pid()), AGENT)
    assert (dead.status, dead.lock_alive, dead.stuck) == ("running", False, True)
    alive = session_file.read_state(sessions_json(tmp_path, pid=os.getpid()), AGENT)
    assert (alive.lock_pid, alive.lock_alive, alive.stuck) == (os.getpid(), True, False)
    idle = session_file.read_state(
        sessions_json(tmp_path, status="idle", pid=dead_pid()), AGENT
    )
    assert not idle.stuck
    no_lock = session_file.read_state(sessions_json(tmp_path, session_file="none.jsonl"), AGENT)
    assert (no_lock.lock_pid, no_lock.stuck) == (None, False)
    relative = sessions_json(tmp_path, pid=dead_pid(), session_file="rel.jsonl")
    assert session_file.read_state(relative, AGENT).stuck  # beside sessions.json
    assert session_file.pid_alive(0) is None  # never a process group


def test_only_a_compaction_checkpoint_of_the_last_five_minutes_means_compacting(
    tmp_path: Path,
) -> None:
    now = time.time()
    old = [{"createdAt": (now - 301) * 1000}, {"createdAt": "yesterday"}, "junk"]
    path = sessions_json(tmp_path, pid=os.getpid(), checkpoints=old)
    assert not session_file.read_state(path, AGENT, now=now).compacting
    path = sessions_json(
        tmp_path, pid=os.getpid(), checkpoints=[*old, {"createdAt": (now - 60) * 1000}]
    )
    assert session_file.read_state(path, AGENT, now=now).compacting


def test_a_revive_sets_the_main_session_idle_in_place_and_leaves_the_rest(tmp_path: Path) -> None:
    path = sessions_json(tmp_path, pid=dead_pid())
    path.chmod(0o640)
    assert session_file.revive(path, AGENT)
    data = json.loads(path.read_text())
    assert data[f"agent:{AGENT}:main"]["status"] == "idle"
    assert data["agent:other:main"] == {"x": 1}
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1.jsonl.lock", "sessions.json"]
    assert not session_file.revive(path, AGENT)  # already idle: nothing to revive


def test_the_session_file_template_is_expanded_per_agent() -> None:
    path = session_file.session_path(
        "~/.openclaw/agents/{agent_id}/sessions/sessions.json", AGENT
    )
    assert path == Path.home() / ".openclaw" / "agents" / AGENT / "sessions" / "sessions.json"
    assert session_file.session_path("/s/{agent_id}.json", "../etc") is None
