"""The notifier against real JetStream and the local platforms: order, head-of-line, retries."""

from __future__ import annotations

from events.core.client import EventClient
from events.reports import Abandoned, Delivered, DeliveryAttempted, Policy, text
from events.reports.client import ReportClient
from services.notifier import Notifier
from tests.hosting import running
from tests.polling import eventually
from tests.services.conftest import Served
from tests.services.notifier.platforms import error
from tests.services.notifier.stack import RING, add_target, history

FAST = Policy(base_s=0.05, max_s=0.2, jitter=0.0, max_attempts=5)


def notifier(client: EventClient, policy: Policy = FAST) -> Notifier:
    return Notifier(client.nc, keyring=RING, policy=policy, timeout_s=5.0)


async def file_many(client: EventClient, n: int, targets: list[str]) -> list[str]:
    rc = ReportClient(client)
    return [(await rc.file(team="t", worker="w", task_id=f"T{i}", progress=f"{i}%", targets=targets)).report_id
            for i in range(n)]


async def test_a_failing_target_blocks_only_itself_and_gets_everything_in_order_after_recovery(
    client: EventClient, served: Served,
) -> None:
    await add_target(client, "steady", {"kind": "discord", "url": f"{served.base}/discord/steady/tok"})
    await add_target(client, "flaky", {"kind": "slack", "url": f"{served.base}/slack/flaky"})
    served.platforms.fail("flaky", error(500), error(429, retry_after="1"))
    gate = served.platforms.hold("flaky")
    ids = await file_many(client, 5, ["flaky", "steady"])
    texts = [text((await ReportClient(client).get(i))[0].filed) for i in ids]  # type: ignore[arg-type]
    p = served.platforms
    async with running(notifier(client)):
        await eventually(lambda: p.waiting["flaky"] == 1, what="flaky's head in flight")
        await eventually(lambda: len(p.received["steady"]) == 5, what="steady got all five")
        assert p.received["flaky"] == []  # its head is still in flight: steady did not wait for it
        gate.set()
        await eventually(lambda: len(p.received["flaky"]) == 5, what="flaky got all five")
        await eventually(lambda: _delivered(client, "flaky", 5), what="five recorded")
    assert p.received["steady"] == texts and p.received["flaky"] == texts
    events = [e for _, e in await history(client) if getattr(e, "target", None) == "flaky"]
    first = [e for s, e in await history(client) if s.startswith(f"reports.{ids[0]}.") and getattr(e, "target", "") == "flaky"]
    assert [(type(e).__name__, e.attempt, e.status_code) for e in first] == [
        ("DeliveryAttempted", 1, 500), ("DeliveryAttempted", 2, 429), ("Delivered", 3, 200)]
    assert first[1].outcome == "rate_limited" and first[1].retry_at is not None
    assert sum(isinstance(e, Delivered) for e in events) == 5  # one per report, none before its 2xx


async def _delivered(client: EventClient, target: str, n: int) -> bool:
    return sum(isinstance(e, Delivered) and e.target == target for _, e in await history(client)) == n


async def test_after_the_attempt_limit_the_report_is_abandoned_and_the_queue_moves_on(
    client: EventClient, served: Served,
) -> None:
    await add_target(client, "down", {"kind": "slack", "url": f"{served.base}/slack/down"})
    served.platforms.fail("down", error(500), error(502))
    ids = await file_many(client, 2, ["down"])
    async with running(notifier(client, Policy(base_s=0.01, max_s=0.05, jitter=0.0, max_attempts=2))):
        await eventually(lambda: _delivered(client, "down", 1))
    events = await history(client)
    abandoned = [e for s, e in events if isinstance(e, Abandoned)]
    assert [a.reason for a in abandoned] == ["gave up after 2 attempts: HTTP 502: {\"message\": \"oops\"}"]
    assert [s.split(".")[1] for s, e in events if isinstance(e, Delivered)] == [ids[1]]
    assert sum(isinstance(e, DeliveryAttempted) for _, e in events) == 2


async def test_a_restarted_notifier_rebuilds_its_queues_and_sends_nothing_twice(
    client: EventClient, served: Served,
) -> None:
    await add_target(client, "d", {"kind": "discord", "url": f"{served.base}/discord/d/tok"})
    await file_many(client, 3, ["d"])
    async with running(notifier(client)):
        await eventually(lambda: _delivered(client, "d", 3))
    await file_many(client, 2, ["d"])
    async with running(notifier(client)):
        await eventually(lambda: _delivered(client, "d", 5))
    assert len(served.platforms.received["d"]) == 5


async def test_target_secrets_never_reach_the_stream_in_clear(
    client: EventClient, served: Served,
) -> None:
    url = f"{served.base}/discord/secret-webhook-token-123/tok"
    await add_target(client, "d", {"kind": "discord", "url": url})
    raw = [m for _, m in await history(client, "targets")]
    assert raw and all("secret-webhook-token-123" not in repr(m) for m in raw)


async def test_a_notifier_without_the_keyring_of_its_targets_stops_at_start(client: EventClient) -> None:
    import pytest

    from events.core.keyring import Keyring, UnknownKeyId, new_key
    from services.targets import KeyringMissing

    await add_target(client, "d", {"kind": "slack", "url": "https://hooks.slack.invalid/x"})
    with pytest.raises(KeyringMissing, match="no keyring"):
        await Notifier(client.nc, keyring=None).check_keys()  # what `run` does first
    with pytest.raises(UnknownKeyId, match="k1"):
        await Notifier(client.nc, keyring=Keyring({"k9": new_key()})).check_keys()
    await Notifier(client.nc, keyring=RING).check_keys()


async def test_an_abandon_that_lands_during_an_attempt_wins_over_its_outcome(
    client: EventClient, served: Served,
) -> None:
    await add_target(client, "slow", {"kind": "slack", "url": f"{served.base}/slack/slow"})
    gate = served.platforms.hold("slow")
    [rid] = await file_many(client, 1, ["slow"])
    async with running(notifier(client)):
        await eventually(lambda: served.platforms.waiting["slow"] == 1, what="the attempt in flight")
        await ReportClient(client).abandon(rid, reason="not needed any more", target="slow")
        [after] = await file_many(client, 1, ["slow"])  # sent only once the first is settled
        gate.set()
        await eventually(lambda: _delivered(client, "slow", 1), what="the next report delivered")
    names = [s.rsplit(".", 1)[1] for s, _ in await history(client) if s.split(".")[1] == rid]
    assert names == ["filed", "abandoned"]  # the late 2xx recorded nothing over the operator's decision
    assert len(served.platforms.received["slow"]) == 2 and after != rid
