from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from events import alerts
from events.alerts import Alert, AlertFiring, AlertResolved, Receive, Webhook

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
ROUTES = {"critical": ["owner-feishu"], "warning": ["coo-feishu"]}
FIRING = Alert(status="firing", fingerprint="a1b2c3", starts_at="2026-11-21T08:59:00Z",
               labels={"alertname": "AgentDown", "severity": "critical", "instance": "w1"},
               annotations={"summary": "agent w1 down"}, generator_url="http://prom/graph")
RESOLVED = msgspec.structs.replace(FIRING, status="resolved", ends_at="2026-11-21T09:10:00Z")


def fold(*events: alerts.AlertEvent) -> alerts.State:
    state = alerts.initial_state("a1b2c3")
    for e in events:
        state, _ = alerts.evolve(state, e, NOW)
    return state


def test_a_critical_alert_fires_to_the_owners_targets() -> None:
    [ev] = alerts.decide(Receive(alert=FIRING, routes=ROUTES), fold(), NOW)
    assert isinstance(ev, AlertFiring)
    assert ev.targets == ["owner-feishu"] and ev.notice == "alert-a1b2c3-firing-20261121085900"


def test_the_same_alert_and_status_again_is_a_no_op() -> None:
    [ev] = alerts.decide(Receive(alert=FIRING, routes=ROUTES), fold(), NOW)
    assert alerts.decide(Receive(alert=FIRING, routes=ROUTES), fold(ev), NOW) == []


def test_an_info_alert_is_recorded_and_not_sent() -> None:
    info = msgspec.structs.replace(FIRING, labels={"alertname": "x", "severity": "info"})
    [ev] = alerts.decide(Receive(alert=info, routes=ROUTES), fold(), NOW)
    assert ev.targets == [] and ev.notice is None


def test_a_resolved_alert_goes_to_the_targets_its_firing_went_to() -> None:
    [fired] = alerts.decide(Receive(alert=FIRING, routes={"critical": ["a", "b"]}), fold(), NOW)
    [ev] = alerts.decide(Receive(alert=RESOLVED, routes=ROUTES), fold(fired), NOW)
    assert isinstance(ev, AlertResolved) and ev.targets == ["a", "b"]
    assert ev.notice == "alert-a1b2c3-resolved-20261121085900"


def test_the_notice_is_coloured_by_severity_and_carries_the_link() -> None:
    [ev] = alerts.decide(Receive(alert=FIRING, routes=ROUTES), fold(), NOW)
    n = alerts.notice("a1b2c3", ev)
    assert (n.severity, n.link, n.title, n.targets) == ("critical", "http://prom/graph", "[CRITICAL] agent w1 down",
                                                        ["owner-feishu"])
    assert "Instance: w1" in n.body


def test_the_webhook_payload_decodes_as_alertmanager_sends_it() -> None:
    raw = {"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "agentledger",
           "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
           "truncatedAlerts": 0,
           "alerts": [{"status": "firing", "labels": {"severity": "warning"}, "annotations": {},
                       "startsAt": "2026-11-21T08:59:00Z", "endsAt": "0001-01-01T00:00:00Z",
                       "generatorURL": "http://prom", "fingerprint": "ff00"}]}
    hook = msgspec.convert(raw, Webhook)
    assert hook.alerts[0].generator_url == "http://prom" and hook.alerts[0].fingerprint == "ff00"
