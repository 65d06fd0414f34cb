"""The atomic file writer behind the key file and the agent session file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.runtime.files import write_atomic


def test_a_new_file_is_for_its_owner_only_and_no_temp_file_stays(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    write_atomic(path, "k1=abc\n")
    assert path.read_text() == "k1=abc\n" and path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["keyring"]


def test_keep_mode_keeps_the_replaced_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    path.write_text("{}")
    path.chmod(0o640)
    write_atomic(path, '{"a": 1}', keep_mode=True)
    assert path.read_text() == '{"a": 1}' and path.stat().st_mode & 0o777 == 0o640


def test_a_failed_write_leaves_the_old_content_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "\udcff")  # a lone surrogate cannot be written
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f"]
