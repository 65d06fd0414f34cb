"""Settings: agentledger.toml < AGENTLEDGER_* environment < flags, errors naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.settings import Settings, SettingsError, load


@pytest.fixture(autouse=True)
def _no_agentledger_toml_of_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agentledger.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file_and_no_environment(tmp_path: Path) -> None:
    s = load(env={})
    assert s == Settings()
    assert s.url == "nats://127.0.0.1:4222" and s.http_url == "http://127.0.0.1:8080"
    assert s.home_path == tmp_path / ".agentledger"
    assert s.projections_dir == tmp_path / ".agentledger" / "projections"
    assert s.nats_store == tmp_path / ".agentledger" / "nats"


def test_environment_wins_over_the_file_and_flags_win_over_both(tmp_path: Path) -> None:
    conf = write(tmp_path, "http_port = 1\nnats_port = 2\nbatch_size = 3\n")
    s = load(
        conf, env={"AGENTLEDGER_HTTP_PORT": "10", "AGENTLEDGER_NATS_PORT": "20"}, http_port=100
    )
    assert (s.http_port, s.nats_port, s.batch_size) == (100, 20, 3)


def test_a_none_flag_leaves_the_lower_layers_alone(tmp_path: Path) -> None:
    assert load(env={"AGENTLEDGER_HOME": "/srv/al"}, home=None).home == "/srv/al"


def test_the_file_may_hold_an_agentledger_table(tmp_path: Path) -> None:
    conf = write(tmp_path, '[agentledger]\nprojector_name = "p2"\nsnapshot_interval_s = 0.5\n')
    s = load(conf, env={})
    assert s.projector_name == "p2" and s.snapshot_interval_s == 0.5


def test_the_config_file_can_be_chosen_by_the_environment(tmp_path: Path) -> None:
    conf = tmp_path / "elsewhere.toml"
    conf.write_text("replicas = 3\n")
    assert load(env={"AGENTLEDGER_CONFIG": str(conf)}).replicas == 3


def test_environment_strings_are_converted_to_the_setting_type() -> None:
    s = load(env={"AGENTLEDGER_SNAPSHOT_INTERVAL_S": "0.25", "AGENTLEDGER_REPLICAS": "3"})
    assert s.snapshot_interval_s == 0.25 and s.replicas == 3


def test_an_external_nats_url_replaces_the_embedded_one() -> None:
    s = load(env={"AGENTLEDGER_NATS_URL": "nats://u:p@nats.internal:4222"})
    assert s.url == "nats://u:p@nats.internal:4222"


def test_a_bad_environment_value_is_named_by_its_variable() -> None:
    with pytest.raises(SettingsError, match="AGENTLEDGER_HTTP_PORT") as err:
        load(env={"AGENTLEDGER_HTTP_PORT": "eighty"})
    assert "int" in str(err.value)


def test_an_out_of_range_file_value_is_named_by_file_and_key(tmp_path: Path) -> None:
    conf = write(tmp_path, "nats_port = 70000\n")
    with pytest.raises(SettingsError, match=r"agentledger.toml: nats_port.*<= 65535"):
        load(conf, env={})


def test_an_out_of_range_flag_is_named_as_the_flag() -> None:
    with pytest.raises(SettingsError, match="--replicas"):
        load(env={}, replicas=9)


def test_an_unknown_key_in_the_file_is_refused_naming_it(tmp_path: Path) -> None:
    conf = write(tmp_path, "http_prot = 80\n")
    with pytest.raises(SettingsError, match="unknown setting .*http_prot"):
        load(conf, env={})


def test_a_config_file_named_explicitly_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load(tmp_path / "missing.toml", env={})


def test_invalid_toml_is_a_settings_error(tmp_path: Path) -> None:
    conf = write(tmp_path, "http_port = = 1\n")
    with pytest.raises(SettingsError, match="invalid TOML"):
        load(conf, env={})


def test_stream_options_carry_the_retention_settings() -> None:
    s = load(env={"AGENTLEDGER_USAGE_MAX_AGE_DAYS": "7"})
    assert s.stream_options() == {
        "replicas": 1,
        "duplicate_window_s": 600.0,
        "max_age_days": {"usage": 7.0, "runs": 30.0},
    }


def test_a_positive_setting_refuses_zero() -> None:
    with pytest.raises(SettingsError, match="AGENTLEDGER_BATCH_SIZE"):
        load(env={"AGENTLEDGER_BATCH_SIZE": "0"})


def test_a_misspelt_environment_variable_is_an_error_naming_it() -> None:
    with pytest.raises(SettingsError, match="AGENTLEDGER_HTTP_PRT"):
        load(env={"AGENTLEDGER_HTTP_PRT": "9000"})


def test_the_session_file_template_knows_only_agent_id_and_names_the_setting(tmp_path: Path) -> None:
    template = "~/.openclaw/agents/{agent_id}/sessions/sessions.json"
    assert load(env={"AGENTLEDGER_DISPATCH_SESSION_FILE": template}).dispatch_session_file == template
    with pytest.raises(SettingsError, match=r"AGENTLEDGER_DISPATCH_SESSION_FILE.*'agent'.*\{agent_id\}"):
        load(env={"AGENTLEDGER_DISPATCH_SESSION_FILE": "~/x/{agent}/sessions.json"})
    conf = write(tmp_path, 'dispatch_session_file = "/x/{task_id}.json"\n')
    with pytest.raises(SettingsError, match="agentledger.toml: dispatch_session_file.*task_id"):
        load(conf, env={})
    with pytest.raises(ValueError, match="dispatch_session_file"):
        Settings(dispatch_session_file="/x/{0}.json")


def test_an_empty_session_file_means_unset() -> None:
    assert load(env={}).dispatch_session_file is None
    assert load(env={"AGENTLEDGER_DISPATCH_SESSION_FILE": ""}).dispatch_session_file is None


def test_calendar_settings_default_to_the_seed_intervals_and_the_host_as_claw() -> None:
    s = load(env={})
    assert (s.calendar_url, s.calendar_sync_interval_s, s.calendar_check_interval_s,
            s.calendar_heartbeat_interval_s, s.calendar_timezone) == (None, 300.0, 30.0, 60.0, "UTC")
    assert s.claw_identifier and all(c.isalnum() or c in "-_" for c in s.claw_identifier)


def test_a_bad_calendar_zone_or_claw_identifier_is_named() -> None:
    with pytest.raises(SettingsError, match="AGENTLEDGER_CALENDAR_TIMEZONE.*Mars/Olympus"):
        load(env={"AGENTLEDGER_CALENDAR_TIMEZONE": "Mars/Olympus"})
    with pytest.raises(SettingsError, match=r"claw_identifier.*\[A-Za-z0-9_-\]"):
        load(env={"AGENTLEDGER_CLAW_IDENTIFIER": "claw.one"})


def test_up_runs_the_scheduler_only_when_a_calendar_url_is_set() -> None:
    from services.up import default_services

    assert "scheduler" not in default_services(load(env={}))
    assert "scheduler" in default_services(load(env={"AGENTLEDGER_CALENDAR_URL": "http://127.0.0.1:8080"}))
def test_alert_routes_are_read_and_a_malformed_one_names_the_setting() -> None:
    routes = load(env={"AGENTLEDGER_ALERT_ROUTES": "critical=owner,pager; warning=coo"}).routes()
    assert routes == {"critical": ["owner", "pager"], "warning": ["coo"]}
    with pytest.raises(SettingsError, match="AGENTLEDGER_ALERT_ROUTES.*'urgent=x' is not"):
        load(env={"AGENTLEDGER_ALERT_ROUTES": "urgent=x"})


def test_the_alertmanager_token_is_a_secret_and_open_when_unset() -> None:
    s = load(env={"AGENTLEDGER_ALERTMANAGER_TOKEN": "am-secret"})
    assert "am-secret" not in repr(s) and s.alertmanager_token_ok("am-secret") and not s.alertmanager_token_ok("x")
    assert load(env={}).alertmanager_token_ok("")


def test_the_notifier_runs_inside_up_unless_disabled() -> None:
    from services.up import default_services

    assert "notifier" in default_services(load(env={}))
    assert "notifier" not in default_services(load(env={"AGENTLEDGER_NOTIFIER_ENABLED": "false"}))
