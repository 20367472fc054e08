"""Keyring backends that misbehave, for the `secrets` tests (loaded by name through
PYTHON_KEYRING_BACKEND, in-process or in a CLI subprocess). Both keep to a temp file named
by $LIVHANA_TEST_KEYRING_FILE, never the operator's keyring."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend


class DroppingKeyring(KeyringBackend):
    """Accepts every write and keeps nothing (as keyring's null backend, or a wallet that
    silently refuses)."""

    priority = 1  # type: ignore[assignment]

    def set_password(self, service: str, username: str, password: str) -> None:
        pass

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def delete_password(self, service: str, username: str) -> None:
        pass


class StickyKeyring(KeyringBackend):
    """Keeps what is written, but a delete does nothing."""

    priority = 1  # type: ignore[assignment]

    def _path(self) -> Path:
        return Path(os.environ["LIVHANA_TEST_KEYRING_FILE"])

    def _load(self) -> dict[str, str]:
        path = self._path()
        return json.loads(path.read_text()) if path.exists() else {}

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        self._path().write_text(json.dumps(data))

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def delete_password(self, service: str, username: str) -> None:
        pass
