"""The runs and watchdog read models: given events -> rows, on an in-memory DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.core.meta import Meta
from events.core.registry import Event
from events.runs import RunFinished, RunFollowing, RunStarted
from events.watchdog import Suspected, TimedOut
from projections import runs, watchdog
from projections.runtime.store import Store

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def given(*steps: tuple[str, Event]) -> list[tuple[Meta, Event]]:
    return [
        (Meta(seq=i, subject=f"{e.domain}.{agg}.{e.name}", at=T0 + timedelta(seconds=i),
              stream=e.domain.upper()), e)
        for i, (agg, e) in enumerate(steps, 1)
    ]


def fold(module: Any, items: list[tuple[Meta, Event]], split: int) -> list[dict[str, Any]]:
    store = Store(":memory:", module).open()
    try:
        for i in range(0, len(items), split):
            chunk = items[i : i + split]
            store.commit(chunk, [], {chunk[0][0].stream: chunk[-1][0].seq})
        table = "runs" if module is runs else "watchdog_decisions"
        return store.connection().sql(f"SELECT * FROM {table} ORDER BY 1").to_arrow_table().to_pylist()
    finally:
        store.close()


RUN = given(
    ("R1", RunStarted(agent_id="architect", task_id="T1")),
    ("R1", RunFollowing(line="step 1")),
    ("R1", RunFollowing(line="step 2")),
    ("R2", RunStarted(agent_id="coo", log_type="heartbeat")),
    ("R1", RunFinished(status="failed", duration_ms=4200, level="error", message="boom")),
)


@pytest.mark.parametrize("split", [1, 2, 5])
def test_a_run_row_holds_its_lines_status_and_duration_whatever_the_batches(split: int) -> None:
    r1, r2 = fold(runs, RUN, split)
    assert {k: r1[k] for k in ("run_id", "agent_id", "task_id", "status", "lines", "last_line",
                               "duration_ms", "level", "message", "content", "last_seq")} == {
        "run_id": "R1", "agent_id": "architect", "task_id": "T1", "status": "failed", "lines": 2,
        "last_line": "step 2", "duration_ms": 4200, "level": "error", "message": "boom",
        "content": "step 1\nstep 2\n", "last_seq": 5,
    }
    assert (r2["status"], r2["log_type"], r2["finished_at"]) == ("running", "heartbeat", None)


def test_the_finished_content_replaces_the_lines_and_is_capped() -> None:
    items = given(("R1", RunStarted(agent_id="a")), ("R1", RunFollowing(line="x")),
                  ("R1", RunFinished(status="success", content="y" * 100_000)))
    (row,) = fold(runs, items, 1)
    assert row["content"] == "y" * 100_000
    lines = given(("R1", RunStarted(agent_id="a")), *[("R1", RunFollowing(line="z" * 59_999))] * 2)
    (row,) = fold(runs, lines, 1)
    assert (row["lines"], len(row["content"])) == (2, 80_000)


def test_every_watchdog_decision_is_a_row_with_its_cause_and_step() -> None:
    items = given(
        ("architect", Suspected(key="k1", cause="silent 31 min", task_id="T1", silent_s=1860)),
        ("architect", TimedOut(key="k2", cause="silent 46 min", task_id="T1", why="silence",
                               step=1, action="release", notify=["coo", "pm"])),
    )
    a, b = fold(watchdog, items, 1)
    assert (a["decision"], a["step"], a["cause"]) == ("suspected", None, "silent 31 min")
    assert (b["decision"], b["step"], b["action"], b["notify"]) == ("timed_out", 1, "release", ["coo", "pm"])
