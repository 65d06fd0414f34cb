"""The `agentledger` console script against a real nats-server (each test on its own account)."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.core.client import EventClient
from tests.services.cli.clirun import Result, clean_env, run


@pytest.fixture
def cli(nats_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = clean_env(AGENTLEDGER_NATS_URL=nats_url)

    async def call(*args: str, **extra_env: str) -> Result:
        return await run(*args, env={**env, **extra_env}, cwd=tmp_path)

    return call


def one_line_error(r: Result) -> str:
    lines = r.err.strip().splitlines()
    assert "Traceback" not in r.err, r.err
    assert len(lines) == 1, r.err
    return lines[0]


async def test_publish_prints_the_acked_sequence(cli, client: EventClient) -> None:  # type: ignore[no-untyped-def]
    r = await cli(
        "publish",
        "agents.architect.heartbeat",
        '{"status":"busy","current_task":"TC-FLOW-001","round":3}',
    )
    assert r.code == 0, r.err
    assert r.out.strip() == "1"
    msg = await client.js.get_last_msg("AGENTS", "agents.architect.heartbeat")
    assert msg.seq == 1


async def test_publish_refuses_a_field_of_the_wrong_type_naming_its_path(
    cli, client: EventClient
) -> None:  # type: ignore[no-untyped-def]
    r = await cli("publish", "agents.architect.heartbeat", '{"status": 5}')
    assert r.code == 2
    assert "$.status" in one_line_error(r)
    assert (await client.js.stream_info("AGENTS")).state.messages == 0


async def test_publish_refuses_an_unknown_field_naming_it(cli, client: EventClient) -> None:  # type: ignore[no-untyped-def]
    r = await cli("publish", "agents.architect.heartbeat", '{"status": "idle", "stauts": "x"}')
    assert r.code == 2
    assert "$.stauts" in one_line_error(r)
    assert (await client.js.stream_info("AGENTS")).state.messages == 0


async def test_publish_refuses_invalid_json(cli, client: EventClient) -> None:  # type: ignore[no-untyped-def]
    r = await cli("publish", "agents.architect.heartbeat", '{"status": ')
    assert r.code == 2
    assert "invalid JSON" in one_line_error(r)
    assert (await client.js.stream_info("AGENTS")).state.messages == 0


async def test_publish_refuses_a_subject_with_an_invalid_id(cli, client: EventClient) -> None:  # type: ignore[no-untyped-def]
    r = await cli("publish", "agents.arch*itect.heartbeat", '{"status": "idle"}')
    assert r.code == 2
    assert "aggregate id" in one_line_error(r)


async def test_publish_with_a_msg_id_is_deduplicated(cli, client: EventClient) -> None:  # type: ignore[no-untyped-def]
    first = await cli("publish", "agents.coo.heartbeat", '{"status":"idle"}', "--msg-id", "hb-1")
    again = await cli("publish", "agents.coo.heartbeat", '{"status":"idle"}', "--msg-id", "hb-1")
    assert first.out == again.out == "1\n"
    assert (await client.js.stream_info("AGENTS")).state.messages == 1


async def test_streams_lists_every_domain_stream(cli, client: EventClient) -> None:  # type: ignore[no-untyped-def]
    await cli("publish", "agents.architect.heartbeat", '{"status":"idle"}')
    r = await cli("streams")
    assert r.code == 0, r.err
    assert "AGENTS" in r.out and "agents.>" in r.out and "TASKS" in r.out
    r = await cli("streams", "--json")
    rows = {s["stream"]: s for s in __import__("json").loads(r.out)}
    assert rows["AGENTS"]["messages"] == 1 and rows["AGENTS"]["subjects"] == "agents.>"


async def test_an_invalid_setting_is_named_and_nothing_runs(cli) -> None:  # type: ignore[no-untyped-def]
    r = await cli("streams", AGENTLEDGER_HTTP_PORT="eighty")
    assert r.code == 2
    assert "AGENTLEDGER_HTTP_PORT" in one_line_error(r)


async def test_an_unknown_log_level_is_named(cli) -> None:  # type: ignore[no-untyped-def]
    r = await cli("streams", AGENTLEDGER_LOG_LEVEL="LOUD")
    assert r.code == 2
    assert "log_level" in one_line_error(r)


async def test_wrong_credentials_are_one_line(cli, nats_server) -> None:  # type: ignore[no-untyped-def]
    url = f"nats://nobody:wrong@127.0.0.1:{nats_server.server.port}"
    r = await cli("--nats-url", url, "streams")
    assert r.code == 1
    line = one_line_error(r)
    assert "cannot connect to NATS at nats://127.0.0.1" in line and "wrong" not in line


async def test_an_invalid_setting_in_the_config_file_is_named(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "agentledger.toml").write_text("http_port = 70000\n")
    r = await cli("streams")
    assert r.code == 2
    assert "http_port" in one_line_error(r) and "agentledger.toml" in r.err


async def test_a_missing_config_file_is_an_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = await cli("--config", str(tmp_path / "nope.toml"), "streams")
    assert r.code == 2
    assert "nope.toml" in one_line_error(r)


async def test_unreachable_nats_is_one_line_and_exit_1(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from services.runtime.natsd import free_port

    url = f"nats://127.0.0.1:{free_port()}"
    r = await cli("--nats-url", url, "publish", "agents.a.heartbeat", '{"status":"idle"}')
    assert r.code == 1
    assert "cannot connect to NATS" in one_line_error(r)


async def test_sql_without_a_projector_says_nobody_answers(cli, client: EventClient) -> None:  # type: ignore[no-untyped-def]
    r = await cli("sql", "SELECT 1")
    assert r.code == 1
    assert "projector" in one_line_error(r)


async def test_replay_refuses_an_unparseable_until(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = await cli("replay", "--until", "yesterday", "--out", str(tmp_path / "x.duckdb"))
    assert r.code == 2
    assert "--until" in one_line_error(r)
