"""`agentledger targets`, `report file` and `reports drain|retry|abandon` as a person runs them."""

from __future__ import annotations

import json
from pathlib import Path

from events.core.client import EventClient
from events.reports import Abandoned, Delivered, RetryRequested
from tests.services.cli.clirun import Result, clean_env, run
from tests.services.conftest import Served
from tests.services.notifier.platforms import error
from tests.services.notifier.stack import RING, history

FILE = ("report", "file", "--team", "clawteam", "--worker", "backend-a", "--task-id", "example-task",
        "--progress", "80%", "--done", "export complete", "--next", "wait for aggregation", "--status", "normal",
        "--source", "checkpoint-complete")


async def cli(nats_url: str, tmp_path: Path, *args: str) -> Result:
    env = clean_env(AGENTLEDGER_NATS_URL=nats_url, AGENTLEDGER_KEYRING=RING.to_env_value())
    return await run(*args, env=env, cwd=tmp_path)


async def test_file_dry_run_drain_retry_and_abandon(
    client: EventClient, served: Served, nats_url: str, tmp_path: Path,
) -> None:
    url = f"{served.base}/slack/owner-secret-path"
    added = await cli(nats_url, tmp_path, "targets", "add", "owner", "--kind", "slack", "--url", url, "--default")
    assert added.code == 0, added.err
    assert "owner-secret-path" not in added.out and json.loads(added.out)["url"].startswith("http:/****")
    listed = await cli(nats_url, tmp_path, "targets", "list", "--json")
    assert [t["name"] for t in json.loads(listed.out)] == ["owner"] and "owner-secret-path" not in listed.out

    dry = await cli(nats_url, tmp_path, *FILE, "--dry-run")
    assert dry.code == 0, dry.err
    assert "would go to owner" in dry.out and "Progress: 80%" in dry.out and "Next: wait for aggregation" in dry.out
    assert await history(client) == []

    filed = await cli(nats_url, tmp_path, *FILE, "--id", "r1")
    assert filed.code == 0 and filed.out.startswith("filed r1 -> owner"), filed.err
    await cli(nats_url, tmp_path, *FILE, "--id", "r2")
    preview = await cli(nats_url, tmp_path, "reports", "drain", "--all", "--dry-run", "--json")
    assert [d["report_id"] for d in json.loads(preview.out)] == ["r1", "r2"]
    assert served.platforms.received["owner-secret-path"] == []

    served.platforms.fail("owner-secret-path", error(500))
    failed = await cli(nats_url, tmp_path, "reports", "drain", "--all", "--json")
    assert failed.code == 1 and [d["outcome"] for d in json.loads(failed.out)] == ["failed"]  # stopped at r1
    one = await cli(nats_url, tmp_path, "reports", "drain", "--json")
    assert [(d["report_id"], d["outcome"]) for d in json.loads(one.out)] == [("r1", "delivered")]

    assert (await cli(nats_url, tmp_path, "reports", "abandon", "r2", "--reason", "stale")).code == 0
    assert (await cli(nats_url, tmp_path, "reports", "retry", "r2")).code == 0
    refused = await cli(nats_url, tmp_path, "reports", "retry", "r1")
    assert refused.code == 1 and "delivered to every target already" in refused.err
    rest = await cli(nats_url, tmp_path, "reports", "drain", "--all", "--json")
    assert [(d["report_id"], d["outcome"]) for d in json.loads(rest.out)] == [("r2", "delivered")]
    kinds = [type(e) for _, e in await history(client)]
    assert kinds.count(Delivered) == 2 and Abandoned in kinds and RetryRequested in kinds
    assert len(served.platforms.received["owner-secret-path"]) == 2
    tested = await cli(nats_url, tmp_path, "targets", "test", "owner")
    assert tested.code == 0 and "owner: delivered" in tested.out
    assert "test message for owner" in served.platforms.received["owner-secret-path"][-1]


async def test_list_and_show_read_the_reports_projection(
    client: EventClient, served: Served, nats_url: str, tmp_path: Path,
) -> None:
    from events.reports.client import ReportClient
    from services.projector.service import ProjectorHost
    from services.settings import Settings
    from tests.hosting import running
    from tests.polling import eventually
    from tests.services.notifier.stack import add_target

    await add_target(client, "owner", {"kind": "slack", "url": f"{served.base}/slack/o"})
    await ReportClient(client).file("r1", team="t", worker="w", progress="10%", targets=["owner"])
    settings = Settings(nats_url=nats_url, home=str(tmp_path / "home"), batch_ms=20)
    async with running(ProjectorHost(settings, client.nc, ["reports"])):  # type: ignore[arg-type]

        async def listed() -> list[dict[str, object]]:
            out = await cli(nats_url, tmp_path, "reports", "list", "--status", "pending", "--json")
            return json.loads(out.out) if out.code == 0 else []

        [row] = await eventually(listed)
        assert (row["id"], row["progress"], row["state"]) == ("r1", "10%", "pending")
        shown = await cli(nats_url, tmp_path, "reports", "show", "r1", "--json")
        assert shown.code == 0, shown.err
        assert [d["target"] for d in json.loads(shown.out)["deliveries"]] == ["owner"]
        missing = await cli(nats_url, tmp_path, "reports", "show", "nope")
        assert missing.code == 1 and "report nope does not exist" in missing.err
