"""Which tasks are actionable and in which order, given/when/then."""

from __future__ import annotations

from events.tasks import (
    TaskClaimed,
    TaskVoided,
    actionable,
    is_actionable,
)
from tests.events.tasks.given import (
    CREATED,
    T1,
    at,
    created,
    given,
)

# --- actionable and ordering ------------------------------------------------------------------


def test_actionable_tasks_are_ordered_by_type_priority_level_and_age() -> None:
    g = given(
        created("creative-P0", type="creative", priority="P0"),
        created("regular-P2", type="regular", priority="P2"),
        created("regular-P1-old", type="regular", priority="P1"),
        created("regular-P1-new", type="regular", priority="P1"),
        created("parent", type="regular", priority="P0"),
        created("fix-P2", type="fix", priority="P2"),
        created("fix-P1-old", type="fix", priority="P1"),
        created("fix-P1-sub", type="fix", priority="P1", parent_id="parent", level=2),
        ("parent", TaskClaimed(agent_id="a")),  # not actionable: claimed (and has an open child)
    )
    assert [t.id for t in actionable(g.board, g.now)] == [
        "fix-P1-sub", "fix-P1-old", "fix-P2", "regular-P1-old", "regular-P1-new", "regular-P2",
        "creative-P0",
    ]


def test_the_actionable_list_leaves_out_every_task_a_claim_would_refuse() -> None:
    g = given(
        created("ok"),
        created("dep-open", depends_on=["ok"]),
        created("not-due", not_before=at(60)),
        created("parent"),
        created("child", parent_id="parent", level=2),
        created("voided-parent"),
        created("orphan", parent_id="voided-parent", level=2),
        ("voided-parent", TaskVoided()),
        created("for-qa", assignee="qa"),
        created("taken"),
        ("taken", TaskClaimed(agent_id="x")),
    )
    assert [t.id for t in actionable(g.board, g.now, agent_id="architect")] == ["child", "ok"]
    assert [t.id for t in actionable(g.board, g.now, agent_id="qa", limit=3)] == ["child", "ok", "for-qa"]
    assert not is_actionable(g.board.get("not-due"), g.board, g.now)  # type: ignore[arg-type]
    assert is_actionable(g.board.get("not-due"), g.board, at(60))  # type: ignore[arg-type]


def test_a_parent_becomes_actionable_when_its_last_child_is_done_or_void() -> None:
    g = given(CREATED, created("C1", parent_id=T1, level=2), created("C2", parent_id=T1, level=2),
              ("C1", TaskVoided()))
    assert not is_actionable(g.state, g.board, g.now)
    g = given(CREATED, created("C1", parent_id=T1, level=2), ("C1", TaskVoided()))
    assert is_actionable(g.state, g.board, g.now)
