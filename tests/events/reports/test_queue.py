from __future__ import annotations

from datetime import timedelta

from msgspec.structs import replace

from events.reports import Abandoned, Board, Delivered, DeliveryAttempted, RetryRequested
from tests.events.reports.given import FILED, T0, at


def board(*steps: tuple[str, object]) -> Board:
    b = Board()
    for seq, (report_id, event) in enumerate(steps, 1):
        b.apply(report_id, event, at(seq), seq)  # type: ignore[arg-type]
    return b


def test_each_target_sends_its_oldest_pending_report_first() -> None:
    b = board(("a", FILED), ("b", FILED), ("c", replace(FILED, targets=["feishu"])))
    assert b.head("discord").id == "a"
    assert [r.id for r in b.pending("feishu")] == ["a", "b", "c"]


def test_a_failing_head_blocks_only_its_own_target() -> None:
    retry = T0 + timedelta(hours=1)
    b = board(("a", FILED), ("b", FILED),
              ("a", DeliveryAttempted(target="discord", attempt=1, outcome="failed", retry_at=retry)))
    assert b.due("discord", at(10)) is None
    assert b.next_at("discord") == retry
    assert b.due("discord", retry).id == "a"
    assert b.due("feishu", at(10)).id == "a"


def test_delivered_and_abandoned_heads_leave_the_queue() -> None:
    b = board(("a", FILED), ("b", FILED), ("c", FILED),
              ("a", Delivered(target="discord", attempt=1)), ("b", Abandoned(target="discord", reason="x")))
    assert b.head("discord").id == "c"
    assert b.head("feishu").id == "a"


def test_a_retried_report_goes_back_to_its_place_by_filing_order() -> None:
    b = board(("a", FILED), ("b", FILED), ("a", Abandoned(target="discord", reason="x")))
    assert b.head("discord").id == "b"
    b.apply("a", RetryRequested(target="discord"), at(9), 9)
    assert [r.id for r in b.pending("discord")] == ["a", "b"]


def test_a_repeated_event_is_a_no_op_with_its_reason() -> None:
    b = board(("a", FILED))
    assert "filed already" in (b.apply("a", FILED, at(5), 5) or "")
    assert [r.id for r in b.pending("discord")] == ["a"]
