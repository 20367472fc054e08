"""Pytest plugin: keyring fixtures that never touch the operator's real keyring.

Register with `pytest_plugins = ["tests.conftest_keyring"]` in tests/conftest.py.

- `temp_keyring`: a keyrings.alt PlaintextKeyring whose file lives in tmp_path, installed
  in-process with `keyring.set_keyring` AND exported through the environment
  (PYTHON_KEYRING_BACKEND + XDG_DATA_HOME), so subprocesses started from the test use the
  very same file. ANTHROPIC_API_KEY is removed so the keyring path is what gets tested.
- `broken_keyring`: every keyring operation fails (keyring's own `fail.Keyring`), in-process
  and in subprocesses; for the "no keyring backend" error paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.core
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyrings.alt.file import PlaintextKeyring

PLAINTEXT_BACKEND = "keyrings.alt.file.PlaintextKeyring"
FAIL_BACKEND = "keyring.backends.fail.Keyring"


def _install(
    backend: KeyringBackend, name: str, data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KeyringBackend]:
    # Read the private slot rather than get_keyring(): that would run backend discovery
    # (and maybe poke D-Bus) just to remember what to restore.
    previous = keyring.core._keyring_backend
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", name)
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.core._keyring_backend = previous


@pytest.fixture
def temp_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PlaintextKeyring]:
    data_home = tmp_path / "keyring-data"
    backend = PlaintextKeyring()
    # The same path keyrings.alt derives from XDG_DATA_HOME, so subprocesses share the file.
    backend.file_path = str(data_home / "python_keyring" / PlaintextKeyring.filename)
    yield from _install(backend, PLAINTEXT_BACKEND, data_home, monkeypatch)  # type: ignore[misc]


@pytest.fixture
def broken_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyringBackend]:
    yield from _install(fail.Keyring(), FAIL_BACKEND, tmp_path / "keyring-data", monkeypatch)
