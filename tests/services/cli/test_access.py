"""`agentledger policy` and `agentledger agents add|revoke|list` as a person runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.services.cli.clirun import clean_env, run


async def test_policy_prints_every_rule_naming_its_writers(tmp_path: Path) -> None:
    r = await run("policy", "--home", str(tmp_path / "home"), env=clean_env(), cwd=tmp_path)
    assert r.code == 0, r.err
    assert "providers.*.updated" in r.out and "tasks.*.claimed" in r.out
    assert "the agent itself" in r.out


async def test_an_agent_gets_credentials_and_its_permissions_are_printable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = await run("agents", "add", "architect", "--home", str(home), env=clean_env(), cwd=tmp_path)
    assert r.code == 0, r.err
    creds = home / "credentials" / "agents" / "architect.json"
    data = json.loads(creds.read_text())
    assert data["user"] == "agent-architect" and data["token"].startswith("agl_agent_architect.")
    assert data["password"] not in r.out + r.err  # the secret stays in the file
    assert creds.stat().st_mode & 0o777 == 0o600
    r = await run("policy", "--principal", "agent:architect", "--home", str(home), env=clean_env(), cwd=tmp_path)
    perms = json.loads(r.out)
    assert "agents.architect.heartbeat" in perms["publish"]["allow"]
    assert "cmd.tasks.*.architect" in perms["publish"]["allow"]
    r = await run("agents", "list", "--home", str(home), env=clean_env(), cwd=tmp_path)
    assert "agent-architect" in r.out
    r = await run("agents", "add", "bad.id", "--home", str(home), env=clean_env(), cwd=tmp_path)
    assert r.code == 2 and "agent_id" in r.err


async def test_the_nats_config_fragment_has_users_and_no_plain_passwords(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = await run("policy", "--nats-config", "--home", str(home), env=clean_env(), cwd=tmp_path)
    assert r.code == 0, r.err
    assert r.out.startswith("authorization {")
    admin = json.loads((home / "credentials" / "admin.json").read_text())
    assert admin["password"] not in r.out and '"$2b$' in r.out


async def test_revoking_an_agent_deletes_its_credentials_and_an_unknown_one_is_wrong_input(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert (await run("agents", "add", "architect", "--home", str(home), env=clean_env(), cwd=tmp_path)).code == 0
    r = await run("agents", "revoke", "architect", "--home", str(home), env=clean_env(), cwd=tmp_path)
    assert r.code == 0, r.err
    assert "credentials deleted" in r.err and "next `agentledger up` leaves the agent out" in r.err
    assert not (home / "credentials" / "agents" / "architect.json").exists()
    r = await run("policy", "--nats-config", "--home", str(home), env=clean_env(), cwd=tmp_path)
    assert "agent-architect" not in r.out
    r = await run("agents", "revoke", "architect", "--home", str(home), env=clean_env(), cwd=tmp_path)
    assert r.code == 2 and "agent architect has no credentials" in r.err
