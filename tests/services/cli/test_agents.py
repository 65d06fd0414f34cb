"""`agentledger agents classes`: the table in force, overrides applied, a bad override refused."""

from __future__ import annotations

import json
from pathlib import Path

from tests.services.cli.clirun import clean_env, run


async def test_the_classes_table_shows_the_seed_defaults_with_the_settings_overrides(tmp_path: Path) -> None:
    env = clean_env(AGENTLEDGER_AGENT_CLASSES='{"dev": {"recovery_s": 3600}}')
    r = await run("agents", "classes", "--json", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    rows = {row["class"]: row for row in json.loads(r.out)}
    assert (rows["dev"]["recovery_s"], rows["dev"]["task_timeout_s"]) == (3600, 7200)
    assert [rows[c]["max_rounds"] for c in ("high_frequency", "dev", "business")] == [50, 100, 30]
    assert rows["high_frequency"]["heartbeat_cron"] == "*/10 * * * *"
    assert rows["dev"]["notify"] == ["coo", "creator"]
    human = await run("agents", "classes", env=env, cwd=tmp_path)
    assert "high_frequency" in human.out and "Asia/Shanghai" in human.err  # the note goes to stderr


async def test_an_override_of_an_unknown_field_is_refused_naming_it(tmp_path: Path) -> None:
    env = clean_env(AGENTLEDGER_AGENT_CLASSES='{"dev": {"recovery": 10}}')
    r = await run("agents", "classes", env=env, cwd=tmp_path)
    assert r.code == 2
    assert "AGENTLEDGER_AGENT_CLASSES" in r.err and "recovery" in r.err
