"""The reports read model, given events -> expected rows, on an in-memory DuckDB (no server)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.alerts import AlertFiring, AlertResolved
from events.core.meta import Meta
from events.reports import Abandoned, Delivered, DeliveryAttempted, ReportFiled
from projections import reports
from projections.runtime.store import Store

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
FILED = ReportFiled(team="t", worker="w", task_id="T1", progress="50%", targets=["a", "b"])


def meta(seq: int, subject: str, s: float = 0) -> Meta:
    return Meta(seq=seq, subject=subject, at=T0 + timedelta(seconds=s), stream=subject.split(".")[0].upper())


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:", reports).open()
    yield s
    s.close()


def rows(store: Store, sql: str) -> list[dict[str, Any]]:
    return store.connection().sql(sql).to_arrow_table().to_pylist()


def apply(store: Store, *batch: tuple[Meta, Any]) -> None:
    con = store.connection()
    con.begin()
    reports.apply(con, list(batch))
    con.commit()


def test_every_attempt_is_a_row_and_the_delivery_keeps_the_outcome(store: Store) -> None:
    retry = T0 + timedelta(seconds=30)
    apply(store, (meta(1, "reports.r1.filed"), FILED),
          (meta(2, "reports.r1.attempted", 1), DeliveryAttempted(target="a", attempt=1, outcome="rate_limited",
                                                                  status_code=429, retry_at=retry)))
    apply(store, (meta(3, "reports.r1.delivered", 31), Delivered(target="a", attempt=2, status_code=200,
                                                                  message_id="m9")),
          (meta(4, "reports.r1.abandoned", 40), Abandoned(target="b", reason="gone", by="operator")))
    assert rows(store, "SELECT target, attempt, outcome, status_code FROM report_attempts ORDER BY seq") == [
        {"target": "a", "attempt": 1, "outcome": "rate_limited", "status_code": 429},
        {"target": "a", "attempt": 2, "outcome": "delivered", "status_code": 200},
    ]
    assert rows(store, "SELECT target, status, attempts, message_id, reason FROM report_deliveries ORDER BY target") == [
        {"target": "a", "status": "delivered", "attempts": 2, "message_id": "m9", "reason": ""},
        {"target": "b", "status": "abandoned", "attempts": 0, "message_id": None, "reason": "gone"},
    ]
    assert rows(store, "SELECT state, last_seq FROM reports") == [{"state": "abandoned", "last_seq": 4}]


def test_queues_count_pending_deliveries_and_their_oldest_filing(store: Store) -> None:
    apply(store, (meta(1, "reports.r1.filed"), FILED), (meta(2, "reports.r2.filed", 5), FILED),
          (meta(3, "reports.r1.delivered", 6), Delivered(target="a", attempt=1)))
    assert rows(store, "SELECT target, pending, oldest_pending_at FROM report_queues ORDER BY target") == [
        {"target": "a", "pending": 1, "oldest_pending_at": T0 + timedelta(seconds=5)},
        {"target": "b", "pending": 2, "oldest_pending_at": T0},
    ]


def test_a_repeated_event_is_a_noop_row(store: Store) -> None:
    apply(store, (meta(1, "reports.r1.filed"), FILED), (meta(2, "reports.r1.filed"), FILED))
    assert [r["reason"] for r in rows(store, "SELECT reason FROM report_noops")] == ["report r1 was filed already"]


def test_alerts_keep_their_last_status(store: Store) -> None:
    firing = AlertFiring(alertname="AgentDown", severity="critical", starts_at="s1", targets=["a"], notice="n1")
    apply(store, (meta(1, "alerts.fp1.firing"), firing),
          (meta(2, "alerts.fp1.resolved", 60), AlertResolved(alertname="AgentDown", severity="critical",
                                                             starts_at="s1", ends_at="e1", targets=["a"])))
    assert rows(store, "SELECT fingerprint, status, ends_at, targets FROM alerts") == [
        {"fingerprint": "fp1", "status": "resolved", "ends_at": "e1", "targets": ["a"]}]
