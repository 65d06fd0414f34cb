"""The reports aggregate: one owner report (or alert notice) and its delivery to each target.

Invariants:
- the report id is the aggregate id; a report is filed once; filing the same id again with the
  same fields is a no-op (`[]`), with other fields `AlreadyFiled`;
- each named target has one delivery: `pending` until the platform confirmed (`delivered`) or
  nobody will try again (`abandoned`, with the reason);
- `delivered` is decided only from a confirmed attempt (`Record(ok=True)`), once: a second success
  to a delivered target decides nothing, so a repeated recording cannot happen twice;
- a failed attempt is recorded with its number and when to try again: the platform's hint
  (Retry-After, Telegram's `retry_after`) when given, else base x 2^(n-1) capped, jittered down;
- after `max_attempts` attempts (counted since the last operator retry) or `max_age_s` since
  filing (or that retry) the failure abandons the delivery in the same decision;
- an operator may abandon an open delivery or retry a pending or abandoned one; a delivered one
  is final.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import assert_never

from msgspec.structs import replace

from events.reports.model import (
    Abandon,
    Abandoned,
    AlreadyDelivered,
    AlreadyFiled,
    Delivered,
    Delivery,
    DeliveryAttempted,
    File,
    NotFound,
    Policy,
    Record,
    Report,
    ReportCommand,
    ReportEvent,
    ReportFiled,
    Retry,
    RetryRequested,
    UnknownTarget,
)

DEFAULT_POLICY = Policy()


def initial_state(report_id: str) -> Report:
    return Report(id=report_id)


def backoff_s(attempt: int, policy: Policy, jitter: float = 0.0) -> float:
    """base x 2^(n-1) capped at max, minus up to `policy.jitter` of itself (`jitter` in [0, 1))."""
    raw = min(policy.max_s, policy.base_s * 2 ** max(0, min(attempt - 1, 40)))
    return raw * (1.0 - policy.jitter * min(max(jitter, 0.0), 1.0))


def _delivery(state: Report, target: str | None) -> Delivery:
    if state.filed is None:
        raise NotFound(f"report {state.id} was never filed")
    if target is None or target not in state.deliveries:
        raise UnknownTarget(f"report {state.id} does not go to target {target}")
    return state.deliveries[target]


def _recorded(cmd: Record, state: Report, now: datetime, policy: Policy) -> list[ReportEvent]:
    d = _delivery(state, cmd.target)
    if d.status != "pending":
        return []  # delivered or abandoned meanwhile: this attempt's outcome changes nothing
    n = d.attempts + 1
    if cmd.ok:
        return [Delivered(target=cmd.target, attempt=n, status_code=cmd.status_code,
                          message_id=cmd.message_id)]
    error = cmd.error[:500]
    since = d.since or state.filed_at or now
    if n - d.budget_from >= policy.max_attempts:
        reason = f"gave up after {n - d.budget_from} attempts: {error}"
    elif (now - since).total_seconds() >= policy.max_age_s:
        reason = f"gave up after {policy.max_age_s:.0f}s: {error}"
    else:
        delay = cmd.retry_after_s if cmd.retry_after_s is not None else backoff_s(n, policy, cmd.jitter)
        return [DeliveryAttempted(target=cmd.target, attempt=n, outcome=cmd.outcome,
                                  status_code=cmd.status_code, error=error,
                                  retry_at=now + timedelta(seconds=max(0.0, delay)))]
    return [DeliveryAttempted(target=cmd.target, attempt=n, outcome=cmd.outcome,
                              status_code=cmd.status_code, error=error),
            Abandoned(target=cmd.target, reason=reason[:500], by="notifier")]


def decide(cmd: ReportCommand, state: Report, now: datetime, policy: Policy = DEFAULT_POLICY) -> list[ReportEvent]:
    match cmd:
        case File(event=ev):
            if state.filed is not None:
                if state.filed == ev:
                    return []
                raise AlreadyFiled(f"report {state.id} was filed already with other fields")
            return [ev]
        case Record():
            return _recorded(cmd, state, now, policy)
        case Abandon(target=target, reason=reason, by=by):
            if target is not None:
                status = _delivery(state, target).status
                if status == "delivered":
                    raise AlreadyDelivered(f"report {state.id} was delivered to {target} already")
                return [Abandoned(target=target, reason=reason[:500], by=by)] if status == "pending" else []
            if state.filed is None:
                raise NotFound(f"report {state.id} was never filed")
            if all(d.status != "pending" for d in state.deliveries.values()):
                return []
            return [Abandoned(reason=reason[:500], by=by)]
        case Retry(target=target):
            if target is not None:
                if _delivery(state, target).status == "delivered":
                    raise AlreadyDelivered(f"report {state.id} was delivered to {target} already")
                return [RetryRequested(target=target)]
            if state.filed is None:
                raise NotFound(f"report {state.id} was never filed")
            if all(d.status == "delivered" for d in state.deliveries.values()):
                raise AlreadyDelivered(f"report {state.id} was delivered to every target already")
            return [RetryRequested()]
        case _:
            assert_never(cmd)


def evolve(state: Report, event: ReportEvent, at: datetime, seq: int = 0) -> tuple[Report, str | None]:
    """Fold one event; returns the new state and, when the event changed nothing, why."""
    if isinstance(event, ReportFiled):
        if state.filed is not None:
            return state, f"report {state.id} was filed already"
        return replace(state, filed=event, filed_at=at, seq=seq,
                       deliveries={t: Delivery() for t in dict.fromkeys(event.targets)}), None
    if state.filed is None:
        return state, f"report {state.id} was never filed"
    match event:
        case DeliveryAttempted() | Delivered():
            d = state.deliveries.get(event.target)
            if d is None:
                return state, f"report {state.id} does not go to target {event.target}"
            if d.status != "pending":
                return state, f"report {state.id} to {event.target} is {d.status} already"
            if isinstance(event, Delivered):
                d = replace(d, status="delivered", attempts=max(d.attempts, event.attempt),
                            status_code=event.status_code, message_id=event.message_id, retry_at=None)
            else:
                d = replace(d, attempts=max(d.attempts, event.attempt), retry_at=event.retry_at,
                            last_error=event.error, status_code=event.status_code)
            return _with(state, event.target, d), None
        case Abandoned() | RetryRequested():
            chosen = [event.target] if event.target is not None else list(state.deliveries)
            changed = dict(state.deliveries)
            for t in chosen:
                d = changed.get(t)
                if d is None or d.status == "delivered":
                    continue
                if isinstance(event, Abandoned):
                    if d.status == "pending":
                        changed[t] = replace(d, status="abandoned", reason=event.reason, retry_at=None)
                else:
                    changed[t] = replace(d, status="pending", retry_at=None, reason="",
                                         budget_from=d.attempts, since=at)
            if changed == state.deliveries:
                return state, f"report {state.id}: {event.name} changed no delivery"
            return replace(state, deliveries=changed), None
        case _:
            return state, f"unhandled event {type(event).__name__}"


def _with(state: Report, target: str, d: Delivery) -> Report:
    return replace(state, deliveries={**state.deliveries, target: d})
