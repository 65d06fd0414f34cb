"""Alerts from Alertmanager: one aggregate per alert fingerprint, firing and resolved.

Invariants:
- the fingerprint is the aggregate id (`alerts.<fingerprint>.firing|resolved`);
- an alert is recorded once per status and `startsAt`: Alertmanager repeats a group every
  `repeat_interval` and retries failed webhooks, and neither becomes a second event or notice;
- severity routes the notice (`route`): critical and warning to their configured targets, info
  (and unknown severities) recorded and not sent;
- a resolved alert goes to the targets its firing went to (or, never seen firing, its route);
- each notice is a report filed under a deterministic id (`notice_id`), so a retried webhook
  files nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, ClassVar, Literal, assert_never

import msgspec
from msgspec.structs import replace

from events.core.policy import Writers, writers
from events.core.registry import Event
from events.reports.model import ReportFiled, Severity

Short = Annotated[str, msgspec.Meta(max_length=2000)]
Labels = Annotated[dict[Annotated[str, msgspec.Meta(max_length=200)], Short], msgspec.Meta(max_length=200)]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")


class Alert(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One alert of Alertmanager's webhook payload (version 4), as it sends it."""

    status: Literal["firing", "resolved"]
    labels: Labels = msgspec.field(default_factory=dict)
    annotations: Labels = msgspec.field(default_factory=dict)
    starts_at: Short = ""
    ends_at: Short = ""
    generator_url: Short = msgspec.field(default="", name="generatorURL")
    fingerprint: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


class Webhook(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    version: Literal["4"]
    group_key: Short = ""
    status: Literal["firing", "resolved"] = "firing"
    receiver: Short = ""
    external_url: Short = msgspec.field(default="", name="externalURL")
    truncated_alerts: int = 0
    group_labels: Labels = msgspec.field(default_factory=dict)
    common_labels: Labels = msgspec.field(default_factory=dict)
    common_annotations: Labels = msgspec.field(default_factory=dict)
    alerts: list[Alert]


# --- events ---------------------------------------------------------------------------------


class AlertEvent(Event, frozen=True, kw_only=True):
    domain: ClassVar[str] = "alerts"
    writers: ClassVar[Writers] = writers("gateway", "admin")
    written_by: ClassVar[str] = "the gateway's Alertmanager webhook"
    alertname: Short = ""
    severity: Short = ""
    labels: Labels = msgspec.field(default_factory=dict)
    annotations: Labels = msgspec.field(default_factory=dict)
    starts_at: Short = ""
    generator_url: Short = ""
    group_key: Short = ""
    targets: Annotated[list[Short], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=list)  # where the notice went
    notice: Short | None = None  # the report id of the notice (None: recorded only)


class AlertFiring(AlertEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "firing"


class AlertResolved(AlertEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "resolved"
    ends_at: Short = ""


class Receive(msgspec.Struct, frozen=True, kw_only=True):
    alert: Alert
    group_key: str = ""
    routes: Mapping[str, list[str]] = msgspec.field(default_factory=dict)


class State(msgspec.Struct, frozen=True, kw_only=True):
    fingerprint: str
    status: str = ""  # "" never seen, firing, resolved
    starts_at: str = ""
    targets: list[str] = msgspec.field(default_factory=list)
    since: datetime | None = None


def initial_state(fingerprint: str) -> State:
    return State(fingerprint=fingerprint)


def route(severity: str, routes: Mapping[str, list[str]]) -> list[str]:
    return [] if severity == "info" else list(routes.get(severity, []))


def notice_id(alert: Alert) -> str:
    stamp = "".join(c for c in alert.starts_at if c.isdigit())[:17] or "0"
    return f"alert-{alert.fingerprint}-{alert.status}-{stamp}"


def decide(cmd: Receive, state: State, now: datetime) -> list[AlertEvent]:
    a = cmd.alert
    match cmd:
        case Receive():
            if state.status == a.status and state.starts_at == a.starts_at:
                return []
            severity = a.labels.get("severity", "")
            if a.status == "resolved" and state.status == "firing" and state.starts_at == a.starts_at:
                targets = list(state.targets)
            else:
                targets = route(severity, cmd.routes)
            common = {
                "alertname": a.labels.get("alertname", ""), "severity": severity, "labels": dict(a.labels),
                "annotations": dict(a.annotations), "starts_at": a.starts_at, "generator_url": a.generator_url,
                "group_key": cmd.group_key, "targets": targets, "notice": notice_id(a) if targets else None,
            }
            if a.status == "firing":
                return [AlertFiring(**common)]  # type: ignore[arg-type]
            return [AlertResolved(ends_at=a.ends_at, **common)]  # type: ignore[arg-type]
        case _:
            assert_never(cmd)


def evolve(state: State, event: AlertEvent, at: datetime) -> tuple[State, str | None]:
    status = event.name
    if state.status == status and state.starts_at == event.starts_at:
        return state, f"alert {state.fingerprint} is {status} already since {event.starts_at}"
    return replace(state, status=status, starts_at=event.starts_at, targets=list(event.targets),
                   since=at), None


def notice(fingerprint: str, event: AlertEvent) -> ReportFiled:
    """The report that tells the targets, coloured by severity, with the alert's links."""
    sev = event.severity if event.severity in SEVERITIES else None
    summary = event.annotations.get("summary") or event.alertname or "alert"
    resolved = event.name == "resolved"
    head = "RESOLVED" if resolved else (event.severity or "alert").upper()
    dashboard = event.annotations.get("dashboard", "")
    lines = [
        f"Alert: {event.alertname}",
        f"Status: {'resolved' if resolved else 'firing'}",
        f"Severity: {event.severity or 'unknown'}",
    ]
    if instance := event.labels.get("instance"):
        lines.append(f"Instance: {instance}")
    if description := event.annotations.get("description"):
        lines.append(f"Details: {description}")
    lines.append(f"Started: {event.starts_at}")
    if isinstance(event, AlertResolved) and event.ends_at:
        lines.append(f"Ended: {event.ends_at}")
    if dashboard:
        lines.append(f"Dashboard: {dashboard}")
    return ReportFiled(
        title=f"[{head}] {summary}"[:500], body="\n".join(lines)[:20_000], team="alertmanager",
        source="alertmanager", status="resolved" if resolved else "firing", severity=sev,
        targets=list(event.targets), link=(event.generator_url or dashboard or None),
        alert=f"{fingerprint} {event.name}",
    )
