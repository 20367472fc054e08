"""OS-keyring secrets, stored under the service "livhana-cockpit".

The keyring API cannot list entries, so the names we set are kept in an index entry
("__names__", a JSON list); `known_secret_values()` uses it to hand every secret to the
redaction layer. `keyring` is imported lazily: backend discovery can be slow and the
cockpit paints its first frame without it. Any backend failure (no backend installed,
locked wallet, D-Bus down, ...) becomes one `SecretStoreError` line, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from .errors import CockpitError, MissingKeyError, UsageError

SERVICE = "livhana-cockpit"
INDEX_NAME = "__names__"
ANTHROPIC_KEY_NAME = "anthropic_api_key"
ANTHROPIC_KEY_ENV = "ANTHROPIC_API_KEY"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Environment variables whose value is a secret by its name: ...KEY, ...TOKEN, ...SECRET,
# ...PASSWORD (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, PGPASSWORD, DJANGO_SECRET_KEY, ...).
_SECRET_ENV = re.compile(
    r"(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|_PAT|_AUTH)$|SECRET|PASSWORD", re.I
)
# ...but these name paths or switches, not secrets (redacting /home/op or "1" would mangle
# ordinary output).
_NOT_SECRET_ENV = re.compile(r"(?:_FILE|_PATH|_DIR|_SOCK|_ID|_NAME|_URL_PATH)$", re.I)


class SecretStoreError(CockpitError):
    """The OS keyring is missing or refused the operation."""

    exit_code = 4


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _call(op: str, method: str, *args: str) -> Any:
    """Run one keyring call, turning any backend failure into a one-line error."""
    try:
        import keyring

        return getattr(keyring, method)(SERVICE, *args)
    except Exception as exc:  # backends raise anything: KeyringError, D-Bus, OSError...
        if type(exc).__name__ == "NoKeyringError":  # a headless box without Secret Service
            raise SecretStoreError(
                f"no OS keyring on this machine ({op}): set ANTHROPIC_API_KEY in the "
                "environment instead, or install a keyring backend (e.g. the Secret Service, "
                "or `pip install keyrings.alt` for a file-based one)"
            ) from None
        raise SecretStoreError(f"OS keyring unavailable ({op}): {_one_line(exc)}") from None


def _check_name(name: str) -> None:
    if name == INDEX_NAME or not _NAME_RE.match(name):
        raise UsageError(f"invalid secret name {name!r}: use letters, digits, '_', '.', '-'")


def _names() -> list[str]:
    raw = _call("read", "get_password", INDEX_NAME)
    try:
        names = json.loads(raw) if raw else []
    except ValueError:
        names = []  # a damaged index only costs redaction coverage, never the secret
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _save_names(names: list[str]) -> None:
    _call("write", "set_password", INDEX_NAME, json.dumps(sorted(set(names))))


def get_secret(name: str) -> str | None:
    _check_name(name)
    return _call("read", "get_password", name)


def set_secret(name: str, value: str) -> None:
    _check_name(name)
    if not value:
        raise UsageError(f"secret {name!r}: empty value")
    _call("write", "set_password", name, value)
    names = _names()
    if name not in names:
        _save_names([*names, name])


def delete_secret(name: str) -> bool:
    """Delete `name`; False when it was not set."""
    _check_name(name)
    existed = _call("read", "get_password", name) is not None
    if existed:
        _call("delete", "delete_password", name)
    names = _names()
    if name in names:
        _save_names([n for n in names if n != name])
    return existed


def list_secret_names() -> list[str]:
    return sorted(_names())


def anthropic_api_key() -> str | None:
    """$ANTHROPIC_API_KEY first (what the SDK itself honours), then the keyring."""
    env = os.environ.get(ANTHROPIC_KEY_ENV, "").strip()
    if env:
        return env
    try:
        return get_secret(ANTHROPIC_KEY_NAME) or None
    except SecretStoreError as exc:
        raise MissingKeyError(
            "no Anthropic API key: set ANTHROPIC_API_KEY (the OS keyring could not be read: "
            f"{str(exc).split(': ', 1)[0]})"
        ) from None


def secret_env_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables named like secrets. Paths and short values are left
    out: they are not secrets, and as redaction targets they would eat ordinary output."""
    found = []
    for name, value in (os.environ if environ is None else environ).items():
        value = value.strip()
        if not _SECRET_ENV.search(name) or _NOT_SECRET_ENV.search(name):
            continue
        if len(value) < 8 or value.startswith(("/", "~", "./")) or value.lower() in _PLAIN:
            continue
        found.append(value)
    return found


_PLAIN = {"true", "false", "none", "null", "disabled", "enabled", "changeme"}


def known_secret_values() -> list[str]:
    """Every secret value we know of, for redaction. Never raises: a broken keyring
    must not stop output from being printed, it only shrinks what can be redacted."""
    values: list[str] = []
    env = os.environ.get(ANTHROPIC_KEY_ENV, "").strip()
    if env:
        values.append(env)
    values += [v for v in secret_env_values() if v not in values]
    try:
        # The Anthropic key may have been stored outside our index (plain `keyring set`).
        for name in [ANTHROPIC_KEY_NAME, *_names()]:
            value = _call("read", "get_password", name)
            if value and value not in values:
                values.append(value)
    except SecretStoreError:
        pass
    return values
