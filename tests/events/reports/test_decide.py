from __future__ import annotations

from datetime import timedelta

from msgspec.structs import replace

from events.reports import (
    Abandon,
    Abandoned,
    AlreadyDelivered,
    AlreadyFiled,
    Delivered,
    DeliveryAttempted,
    File,
    NotFound,
    Record,
    Retry,
    RetryRequested,
    UnknownTarget,
    backoff_s,
    evolve,
)
from events.reports.model import Policy
from tests.events.reports.given import FILED, given

OK = Record(target="discord", ok=True, status_code=200, message_id="m1")
FAIL = Record(target="discord", ok=False, status_code=500, error="HTTP 500")


def test_a_new_report_is_filed() -> None:
    given().when(File(event=FILED)).then(FILED)


def test_filing_the_same_report_again_is_a_no_op() -> None:
    given(FILED).when(File(event=FILED)).then()


def test_filing_an_id_taken_by_other_fields_is_refused() -> None:
    other = File(event=replace(FILED, progress="90%"))
    given(FILED).when(other).then_raises(AlreadyFiled, "filed already with other fields")


def test_a_confirmed_attempt_delivers_with_the_channels_message_id() -> None:
    given(FILED).when(OK).then(Delivered(target="discord", attempt=1, status_code=200, message_id="m1"))


def test_a_second_success_after_delivery_decides_nothing() -> None:
    given(FILED, Delivered(target="discord", attempt=1)).when(OK).then()


def test_a_failure_schedules_the_next_attempt_with_exponential_backoff() -> None:
    g = given(FILED, DeliveryAttempted(target="discord", attempt=1, outcome="failed", error="x"))
    g.when(FAIL).then(DeliveryAttempted(target="discord", attempt=2, outcome="failed", status_code=500,
                                        error="HTTP 500", retry_at=g.now + timedelta(seconds=2)))


def test_the_platforms_retry_hint_wins_over_the_backoff() -> None:
    g = given(FILED)
    hinted = Record(target="discord", ok=False, outcome="rate_limited", status_code=429, retry_after_s=7.0)
    g.when(hinted).then(DeliveryAttempted(target="discord", attempt=1, outcome="rate_limited",
                                          status_code=429, retry_at=g.now + timedelta(seconds=7)))


def test_jitter_only_shortens_the_backoff_and_the_cap_holds() -> None:
    p = Policy(base_s=1.0, max_s=60.0, jitter=0.5)
    assert backoff_s(3, p) == 4.0
    assert backoff_s(3, p, jitter=0.99) < 4.0
    assert backoff_s(3, p, jitter=0.99) >= 2.0
    assert backoff_s(30, p) == 60.0


def test_the_attempt_limit_abandons_in_the_same_decision() -> None:
    g = given(FILED, DeliveryAttempted(target="discord", attempt=1, outcome="failed")).with_policy(max_attempts=2)
    g.when(FAIL).then(
        DeliveryAttempted(target="discord", attempt=2, outcome="failed", status_code=500, error="HTTP 500"),
        Abandoned(target="discord", reason="gave up after 2 attempts: HTTP 500"),
    )


def test_the_age_limit_abandons() -> None:
    g = given(FILED).with_policy(max_age_s=60.0)
    g.at(g.now + timedelta(minutes=5)).when(FAIL).then(
        DeliveryAttempted(target="discord", attempt=1, outcome="failed", status_code=500, error="HTTP 500"),
        Abandoned(target="discord", reason="gave up after 60s: HTTP 500"),
    )


def test_an_attempt_to_a_target_the_report_does_not_name_is_refused() -> None:
    given(FILED).when(Record(target="slack", ok=True)).then_raises(UnknownTarget, "does not go to target slack")


def test_recording_on_a_report_never_filed_is_refused() -> None:
    given().when(OK).then_raises(NotFound, "never filed")


def test_an_operator_abandons_an_open_delivery() -> None:
    given(FILED).when(Abandon(target="discord", reason="channel gone")).then(
        Abandoned(target="discord", reason="channel gone", by="operator"))


def test_a_delivered_report_cannot_be_abandoned_or_retried() -> None:
    g = given(FILED, Delivered(target="discord", attempt=1))
    g.when(Abandon(target="discord", reason="x")).then_raises(AlreadyDelivered, "delivered to discord")
    g.when(Retry(target="discord")).then_raises(AlreadyDelivered, "delivered to discord")


def test_a_retry_reopens_an_abandoned_delivery_with_a_fresh_attempt_budget() -> None:
    g = given(FILED, DeliveryAttempted(target="discord", attempt=1, outcome="failed"),
              Abandoned(target="discord", reason="gave up"), RetryRequested(target="discord"))
    d = g.state.deliveries["discord"]
    assert (d.status, d.attempts, d.budget_from, d.retry_at) == ("pending", 1, 1, None)
    g.with_policy(max_attempts=2).when(FAIL).then(
        DeliveryAttempted(target="discord", attempt=2, outcome="failed", status_code=500, error="HTTP 500",
                          retry_at=g.now + timedelta(seconds=2)))


def test_a_report_is_delivered_only_when_every_target_is() -> None:
    g = given(FILED, Delivered(target="discord", attempt=1))
    assert g.state.status == "pending"
    assert given(FILED, Delivered(target="discord", attempt=1), Delivered(target="feishu", attempt=3)).state.status == "delivered"


def test_a_late_attempt_after_delivery_is_a_recorded_no_op() -> None:
    g = given(FILED, Delivered(target="discord", attempt=1))
    state, reason = evolve(g.state, DeliveryAttempted(target="discord", attempt=2, outcome="failed"), g.now)
    assert state == g.state and reason is not None and "delivered already" in reason

