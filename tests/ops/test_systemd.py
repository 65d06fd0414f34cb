"""Every service `agentledger serve` knows has a systemd unit that runs exactly that, and back."""

from __future__ import annotations

import argparse
import configparser
from pathlib import Path

from services.cli.main import parser

UNITS = Path(__file__).resolve().parents[2] / "ops" / "systemd"


def serve_choices() -> set[str]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    serve = sub.choices["serve"]
    return set(next(a for a in serve._actions if a.dest == "service").choices)


def test_every_service_has_a_unit_running_agentledger_serve_of_it_with_a_home() -> None:
    found = {}
    for path in UNITS.glob("agentledger-*.service"):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read(path)
        name = path.stem.removeprefix("agentledger-")
        found[name] = unit["Service"]
    assert set(found) == serve_choices()
    for name, service in found.items():
        assert service["ExecStart"].endswith(f"/agentledger serve {name}"), name
        assert "AGENTLEDGER_HOME=" in service["Environment"], name  # its credentials live there
        assert service["Restart"] == "on-failure", name
