"""A store is never made quietly: a look at a data dir with none makes none, and a
command that has to make one says where (issue 12: a CLI call meant for the demo's data
dir left an empty store in the operator's default one, unnoticed)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import cli


def test_a_view_on_a_data_dir_without_a_store_makes_none(tmp_path: Path) -> None:
    data = tmp_path / "nowhere"
    for view in ("history", "tasks", "approvals"):
        done = cli(view, env={"LIVHANA_DATA_DIR": str(data)})
        assert done.returncode == 0, done.stderr
        assert "made a new store" not in done.stderr
    assert not data.exists()


def test_a_command_that_makes_a_store_says_where(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    done = cli("stop", env={"LIVHANA_DATA_DIR": str(data)})
    assert done.returncode == 0, done.stderr
    store = data / "livhana.db"
    assert store.exists()
    assert f"made a new store at {store} (LIVHANA_DATA_DIR" in done.stderr
    again = cli("rearm", env={"LIVHANA_DATA_DIR": str(data)})  # the store is there now
    assert again.returncode == 0 and "made a new store" not in again.stderr
    other = tmp_path / "other"
    named = cli("--data-dir", str(other), "stop")
    assert f"made a new store at {other / 'livhana.db'} (--data-dir" in named.stderr
