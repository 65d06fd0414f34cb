"""A raw-published backend event with a plaintext key is rejected, and the plaintext is kept nowhere."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from events.core.client import EventClient
from events.core.redact import REDACTED
from projections.runtime.protocol import QueryClient
from services.projector.service import ProjectorHost
from services.settings import Settings
from tests.hosting import raw_pub, running
from tests.polling import eventually
from tests.services.cli.test_keys import assert_nowhere, files_under

PLAIN = "sk-live-PLAINTEXT-rejected-0123456789"


async def test_a_rejected_payload_keeps_what_was_wrong_but_not_the_key(
    nats_url: str, tmp_path: Path, client: EventClient, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(nats_url=nats_url, home=str(tmp_path / "home"), batch_ms=20, snapshot_interval_s=0.2)
    payload = {"name": "Z", "api_base_url": "http://z.local/v1", "api_key": PLAIN,
               "extra": {"Authorization": f"Bearer {PLAIN}"}}
    async with running(ProjectorHost(settings, client.nc, ["providers"])) as host:
        await raw_pub(nats_url, "providers.bkd_z.created", orjson.dumps(payload))
        await raw_pub(nats_url, "providers.bkd_t.created", b'{"name": "T", "token": "' + PLAIN.encode() + b'", "x')
        queries = QueryClient(client.nc, settings.projector_name, 5)

        async def rejected() -> list[dict[str, object]] | None:
            rows = (await queries.rejects("providers")).records()
            return rows if len(rows) == 2 else None

        rows = await eventually(rejected, 30, "both payloads rejected")
        await host.snapshot("providers")

    by_subject = {r["subject"]: r for r in rows}
    z = by_subject["providers.bkd_z.created"]
    assert "$.api_key" in str(z["error"])  # the operator still sees what was wrong
    assert orjson.loads(str(z["payload"])) == {**payload, "api_key": REDACTED, "extra": {"Authorization": REDACTED}}
    assert str(by_subject["providers.bkd_t.created"]["payload"]).startswith('{"name": "T", "token": "[redacted]"')
    files = files_under(settings.projections_dir)
    assert any(f.name.endswith(".duckdb") for f in files) and any("snapshot" in f.name for f in files)
    assert_nowhere([PLAIN], "a file under the projections folder", list(files.values()))
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "rejects" in logged
    assert_nowhere([PLAIN], "a log line", [logged.encode()])

