"""The tasks read model, given events -> expected rows, on an in-memory DuckDB (no server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.core.meta import Meta
from events.core.registry import Event
from events.mail import MailEvent, MailRead, MailReplied, MailSent
from events.tasks import (
    Board,
    TaskAttemptFinished,
    TaskAttemptStarted,
    TaskClaimed,
    TaskCommented,
    TaskCreated,
    TaskEvent,
    TaskOutputAdded,
    TaskStarted,
    TaskVoided,
    actionable,
    evolve,
    initial_state,
)
from projections import tasks
from projections.runtime.store import Store

T0 = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)


class Given:
    """Events numbered like their streams (TASKS and MAIL each from 1), `s` seconds after T0."""

    def __init__(self) -> None:
        self.seqs = {"TASKS": 0, "MAIL": 0}
        self.items: list[tuple[Meta, Event]] = []

    def __call__(self, aggregate: str, event: TaskEvent | MailEvent, s: float = 0) -> Given:
        stream = "TASKS" if isinstance(event, TaskEvent) else "MAIL"
        self.seqs[stream] += 1
        subject = f"{event.domain}.{aggregate}.{event.name}"
        meta = Meta(seq=self.seqs[stream], subject=subject, at=T0 + timedelta(seconds=s), stream=stream)
        self.items.append((meta, event))
        return self

    def task(self, task_id: str, **fields: Any) -> Given:
        return self(task_id, TaskCreated(title=f"title of {task_id}", **fields))


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:", tasks).open()
    yield s
    s.close()


def rows(store: Store, sql: str, **params: Any) -> list[dict[str, Any]]:
    return store.connection().sql(sql, params=params or None).to_arrow_table().to_pylist()


def query(store: Store, name: str, **params: Any) -> list[dict[str, Any]]:
    return rows(store, tasks.QUERIES[name], **params)


def apply(store: Store, given: Given, *, split: int | None = None) -> None:
    items = given.items
    chunks = [items] if split is None else [items[i : i + split] for i in range(0, len(items), split)]
    for chunk in chunks:
        checkpoints: dict[str, int] = {}
        for meta, _ in chunk:
            checkpoints[meta.stream] = meta.seq
        store.commit(chunk, [], checkpoints)


def test_a_created_task_is_one_pending_row_with_its_fields(store: Store) -> None:
    apply(store, Given().task("T1", project="p1", type="fix", priority="P0", depends_on=["T0"]))
    (row,) = query(store, "get", id="T1")
    assert row["status"] == "pending" and row["project"] == "p1" and row["type"] == "fix"
    assert row["depends_on"] == ["T0"] and row["created_seq"] == 1 and row["last_seq"] == 1
    assert row["created_at"] == T0 and row["claimed_by"] is None


def test_a_second_claim_is_a_noop_with_its_reason_and_the_first_claimer_stays(store: Store) -> None:
    given = Given().task("T1")("T1", TaskClaimed(agent_id="architect"), 1)("T1", TaskClaimed(agent_id="coo"), 2)
    apply(store, given, split=1)
    (row,) = query(store, "get", id="T1")
    assert row["status"] == "claimed" and row["claimed_by"] == "architect" and row["last_seq"] == 3
    history = query(store, "history", id="T1")
    assert [(h["seq"], h["event"], h["actor"]) for h in history] == [
        (1, "created", None), (2, "claimed", "architect"), (3, "claimed", "coo"),
    ]
    assert history[1]["noop_reason"] is None
    assert history[2]["noop_reason"] == "task T1 is already claimed by architect"
    assert json.loads(history[2]["data"]) == {"agent_id": "coo"}


def test_the_table_agrees_with_the_pure_fold_whatever_the_batch_size(store: Store) -> None:
    given = (Given().task("T1").task("T2")("T1", TaskClaimed(agent_id="a"), 1)
             ("T1", TaskStarted(agent_id="b"), 2)("T1", TaskStarted(agent_id="a"), 3)
             ("T2", TaskVoided(reason="obsolete"), 4)("T3", TaskClaimed(agent_id="a"), 5))
    apply(store, given, split=2)
    expected = {}
    for meta, event in given.items:
        tid = meta.subject.split(".")[1]
        expected[tid], _ = evolve(expected.get(tid) or initial_state(tid), event, meta.at, meta.seq)
    got = {r["id"]: r for r in rows(store, "SELECT * FROM tasks")}
    assert set(got) == {"T1", "T2"}  # T3 never existed: only its no-op is recorded
    for tid, row in got.items():
        assert (row["status"], row["claimed_by"], row["started_at"]) == (
            expected[tid].status, expected[tid].claimed_by, expected[tid].started_at)
    (t3,) = query(store, "history", id="T3")
    assert t3["noop_reason"] == "task T3 does not exist"


def test_list_filters_by_status_agent_and_project_and_null_means_any(store: Store) -> None:
    given = Given().task("T1", project="p1").task("T2", project="p2", assignee="coo")
    apply(store, given("T1", TaskClaimed(agent_id="architect")))
    ids = lambda **p: [r["id"] for r in query(store, "list", **({"status": None, "agent": None, "project": None} | p))]
    assert ids() == ["T1", "T2"]
    assert ids(status="claimed") == ["T1"] and ids(project="p2") == ["T2"]
    assert ids(agent="architect") == ["T1"] and ids(agent="coo") == ["T2"]
    assert ids(status="done") == []


def test_actionable_is_ordered_exactly_like_order_key(store: Store) -> None:
    given = Given()
    specs = [("C1", "creative", "P0"), ("R2", "regular", "P2"), ("R0", "regular", "P0"),
             ("F1", "fix", "P1"), ("R0b", "regular", "P0"), ("F0", "fix", "P0")]
    for tid, kind, prio in specs:
        given.task(tid, type=kind, priority=prio)
    given.task("R1", type="regular", priority="P1")
    given.task("R1-sub", parent_id="R1", level=2, root_id="R1", type="regular", priority="P1")
    apply(store, given)
    got = [r["id"] for r in query(store, "actionable", agent=None, limit=None)]
    assert got == ["F0", "F1", "R0", "R0b", "R1-sub", "R2", "C1"]
    # the pure queue over the same events gives the same list
    board = Board()
    states: dict[str, Any] = {}
    for meta, event in given.items:
        tid = meta.subject.split(".")[1]
        states[tid], _ = evolve(states.get(tid) or initial_state(tid), event, meta.at, meta.seq)
        board.put(states[tid])
    assert [t.id for t in actionable(board, datetime.now(UTC))] == got
    assert [r["id"] for r in query(store, "actionable", agent=None, limit=2)] == ["F0", "F1"]


def test_a_parent_is_not_actionable_while_a_child_is_open(store: Store) -> None:
    given = Given().task("P").task("P-1", parent_id="P", level=2, root_id="P")
    apply(store, given)
    assert [r["id"] for r in query(store, "actionable", agent=None, limit=None)] == ["P-1"]
    done = Given()
    done.seqs["TASKS"] = 2
    apply(store, done("P-1", TaskVoided(reason="not needed")))
    assert [r["id"] for r in query(store, "actionable", agent=None, limit=None)] == ["P"]


def test_dependencies_not_before_closed_parents_and_assignees_hold_tasks_back(store: Store) -> None:
    given = (Given().task("D").task("A", depends_on=["D"]).task("Ghost", depends_on=["nobody"])
             .task("Later", not_before=datetime.now(UTC) + timedelta(hours=1))
             .task("Mine", assignee="coo").task("V").task("V-1", parent_id="V", level=2)
             ("V", TaskVoided(reason="dropped")))
    apply(store, given)
    assert [r["id"] for r in query(store, "actionable", agent=None, limit=None)] == ["D", "Mine"]
    assert [r["id"] for r in query(store, "actionable", agent="architect", limit=None)] == ["D"]
    assert [r["id"] for r in query(store, "actionable", agent="coo", limit=None)] == ["D", "Mine"]


def test_tree_is_the_root_and_all_its_descendants_in_creation_order(store: Store) -> None:
    given = (Given().task("R").task("R-b", parent_id="R", level=2, root_id="R")
             .task("R-a", parent_id="R", level=2, root_id="R").task("Other"))
    apply(store, given)
    tree = query(store, "tree", id="R")
    assert [(r["id"], r["depth"], r["root_task"]) for r in tree] == [("R", 0, "R"), ("R-b", 1, "R"), ("R-a", 1, "R")]
    assert [r["id"] for r in query(store, "tree", id="R-a")] == ["R-a"]
    assert query(store, "tree", id="missing") == []


def test_attempts_outputs_and_comments_have_rows_of_their_own(store: Store) -> None:
    given = (Given().task("T1")("T1", TaskClaimed(agent_id="a"), 1)
             ("T1", TaskAttemptStarted(agent_id="a", session_id="s1"), 2)
             ("T1", TaskAttemptFinished(agent_id="a", outcome="gateway_timeout", exit_code=1), 3)
             ("T1", TaskAttemptStarted(agent_id="a", session_id="s1", continuation=1), 4)
             ("T1", TaskOutputAdded(agent_id="a", type="code", title="patch", content="diff"), 5)
             ("T1", TaskCommented(author="coo", body="looks good"), 6)
             ("T1", TaskAttemptFinished(agent_id="a", outcome="completed", exit_code=0, duration_ms=1200), 7))
    apply(store, given, split=3)
    attempts = query(store, "attempts", id="T1")
    assert [(a["attempt"], a["outcome"], a["continuation"], a["session_id"]) for a in attempts] == [
        (1, "gateway_timeout", 0, "s1"), (2, "completed", 1, "s1")]
    assert attempts[1]["started_at"] == T0 + timedelta(seconds=4) and attempts[1]["duration_ms"] == 1200
    (output,) = query(store, "outputs", id="T1")
    assert (output["type"], output["title"], output["content"], output["seq"]) == ("code", "patch", "diff", 6)
    (comment,) = query(store, "comments", id="T1")
    assert (comment["author"], comment["body"]) == ("coo", "looks good")
    (row,) = query(store, "get", id="T1")
    assert row["attempts"] == 2 and row["outputs"] == 1 and row["comments"] == 1


def test_mail_is_one_row_per_message_with_read_and_replied_and_the_inbox_counts(store: Store) -> None:
    given = (Given()("m1", MailSent(from_agent="coo", to="architect", performative="request", subject="plan?"))
             ("m2", MailSent(from_agent="ceo", to="architect", body="fyi"), 1)
             ("m1", MailRead(agent_id="architect"), 2)
             ("m1", MailRead(agent_id="architect"), 3)
             ("r1", MailSent(from_agent="architect", to="coo", in_reply_to="m1", body="yes"), 4)
             ("m1", MailReplied(agent_id="architect", reply_id="r1"), 4))
    apply(store, given, split=2)
    inbox = query(store, "inbox", agent="architect")
    assert [(m["id"], m["read"], m["replied"]) for m in inbox] == [("m1", True, True), ("m2", False, False)]
    assert inbox[0]["reply_ids"] == ["r1"] and inbox[0]["from_agent"] == "coo"
    assert {(m["unread"], m["unanswered"]) for m in inbox} == {(1, 0)}
    (coo,) = query(store, "inbox", agent="coo")
    assert coo["in_reply_to"] == "m1" and coo["unanswered"] == 0
    noop = rows(store, "SELECT * FROM mail_events WHERE seq = 4")[0]
    assert noop["noop_reason"] == "message m1 was already read" and noop["actor"] == "architect"


def test_a_batch_across_both_streams_moves_both_checkpoints(store: Store) -> None:
    apply(store, Given().task("T1")("m1", MailSent(from_agent="a", to="b")))
    assert store.checkpoints() == {"TASKS": 1, "MAIL": 1}
    assert [r["id"] for r in query(store, "inbox", agent="b")] == ["m1"]


def test_attempt_rows_are_the_same_whatever_the_batch_boundaries() -> None:
    given = (Given().task("T1")("T1", TaskAttemptStarted(agent_id="a", session_id="s1"), 1)
             ("T1", TaskAttemptFinished(agent_id="a", outcome="agent_failed", attempt=1, error="boom"), 2)
             ("T1", TaskAttemptFinished(agent_id="a", outcome="agent_failed", attempt=1), 3))
    tables = []
    for split in (None, 1):
        s = Store(":memory:", tasks).open()
        try:
            apply(s, given, split=split)
            tables.append(rows(s, "SELECT * FROM task_attempts ORDER BY ALL"))
        finally:
            s.close()
    assert tables[0] == tables[1] and tables[0][0]["error"] == "boom" and tables[0][0]["session_id"] == "s1"
