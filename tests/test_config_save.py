"""Saving the cockpit's UI settings into config.toml: the operator's file stays theirs
(comments, order, other sections), every value is escaped, and the write is atomic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config, save_ui_settings
from agent.errors import ConfigError
from tests.conftest import cli

WRITTEN = """\
# my cockpit settings (kept by hand)
[engine]
max_steps = 40  # enough for most tasks

[ui]
# the theme I like in the morning
theme = "livhana-light"
keymap = { "stop" = "ctrl+x" }

[sandbox]
network = false
"""


def test_a_theme_and_a_backslash_key_round_trip_keeping_comments(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.toml").write_text(WRITTEN, encoding="utf-8")
    config = load_config(data)
    config.ui.theme = "livhana-dark"
    config.ui.keymap = {"stop": "ctrl+\\", "quote": 'say "hi"', "new": "n"}
    save_ui_settings(config)

    text = (data / "config.toml").read_text(encoding="utf-8")
    for kept in ("# my cockpit settings (kept by hand)", "max_steps = 40  # enough for most tasks",
                 "# the theme I like in the morning", "[sandbox]\nnetwork = false"):
        assert kept in text
    again = load_config(data)  # what the next start reads
    assert again.ui.theme == "livhana-dark"
    assert again.ui.keymap == {"stop": "ctrl+\\", "quote": 'say "hi"', "new": "n"}
    assert again.engine.max_steps == 40 and again.sandbox.network is False
    assert [p.name for p in data.iterdir()] == ["config.toml"]  # no temp file left
    # The real command line starts on it.
    started = cli("--data-dir", str(data), "tasks")
    assert started.returncode == 0, started.stderr


def test_a_new_config_file_gets_a_ui_section_and_an_empty_keymap_none(tmp_path: Path) -> None:
    config = load_config(tmp_path / "fresh")
    config.ui.theme = "livhana-light"
    save_ui_settings(config)
    assert load_config(tmp_path / "fresh").ui.theme == "livhana-light"
    assert "keymap" not in (tmp_path / "fresh" / "config.toml").read_text()


def test_a_failed_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.toml").write_text(WRITTEN, encoding="utf-8")
    os.chmod(data / "config.toml", 0o600)
    config = load_config(data)
    config.ui.theme = "livhana-dark"

    def crash(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_ui_settings(config)
    assert (data / "config.toml").read_text(encoding="utf-8") == WRITTEN
    assert [p.name for p in data.iterdir()] == ["config.toml"]
    monkeypatch.undo()
    save_ui_settings(config)
    assert (data / "config.toml").stat().st_mode & 0o777 == 0o600  # its permissions kept


def test_a_broken_hand_edit_is_not_overwritten(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.toml").write_text("[ui\ntheme = ", encoding="utf-8")
    config = load_config(tmp_path / "other")
    config.config_path = data / "config.toml"
    with pytest.raises(ConfigError, match="cannot update"):
        save_ui_settings(config)
    assert (data / "config.toml").read_text(encoding="utf-8") == "[ui\ntheme = "
