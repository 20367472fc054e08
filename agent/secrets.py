"""OS-keyring secrets, stored under the service "livhana-cockpit".

The keyring API cannot list entries, so the names we set are kept in an index entry
("__names__", a JSON list); `known_secret_values()` uses it to hand every secret to the
redaction layer. `keyring` is imported lazily: backend discovery can be slow and the
cockpit paints its first frame without it. Any backend failure (no backend installed,
locked wallet, D-Bus down, ...) becomes one `SecretStoreError` line, never a traceback.

Every write is checked by reading it back: a backend that accepts a write and keeps nothing
(keyring's null backend, a chainer with nothing to chain, a wallet that drops it) is an
error that names the fix, never "stored".
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


_FIX = (
    "set ANTHROPIC_API_KEY in the environment instead, or install a keyring backend (the "
    "Secret Service, or `pip install keyrings.alt` for a file-based one)"
)


def _call(op: str, method: str, *args: str) -> Any:
    """Run one keyring call, turning any backend failure into a one-line error."""
    try:
        import keyring

        _check_backend(keyring.get_keyring(), op)
        return getattr(keyring, method)(SERVICE, *args)
    except SecretStoreError:
        raise
    except Exception as exc:  # backends raise anything: KeyringError, D-Bus, OSError...
        if type(exc).__name__ == "NoKeyringError":  # a headless box without Secret Service
            raise SecretStoreError(f"no OS keyring on this machine ({op}): {_FIX}") from None
        raise SecretStoreError(f"OS keyring unavailable ({op}): {_one_line(exc)}") from None


def backend_name(backend: Any) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def _check_backend(backend: Any, op: str) -> None:
    """A backend that cannot keep anything is no keyring: null (`keyring --disable`), fail,
    or a chainer with nothing to chain."""
    from keyring.backends import chainer, fail, null

    empty_chain = isinstance(backend, chainer.ChainerBackend) and not backend.backends
    if isinstance(backend, null.Keyring | fail.Keyring) or empty_chain:
        nothing = "; nothing was stored" if op == "write" else ""
        raise SecretStoreError(
            f"no OS keyring on this machine ({backend_name(backend)}){nothing}: {_FIX}"
        )


def describe_backend() -> str:
    """Where secrets go, for the operator: the backend, and its file if it has one."""
    import keyring

    backend = keyring.get_keyring()
    where = getattr(backend, "file_path", None)
    return backend_name(backend) + (f", file {where}" if where else "")


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
    """Store `value`, then read it back: SecretStoreError unless the keyring kept it."""
    _check_name(name)
    if not value:
        raise UsageError(f"secret {name!r}: empty value")
    _call("write", "set_password", name, value)
    if _call("read back", "get_password", name) != value:
        raise SecretStoreError(
            f"the OS keyring did not keep {name} (nothing was stored): {_FIX}"
        )
    names = _names()
    if name not in names:
        _save_names([*names, name])
        if name not in _names():
            raise SecretStoreError(
                f"{name} was stored, but the keyring did not keep its name in our index, so "
                f"running tasks will not redact it: retry, or check the keyring backend"
            )


def delete_secret(name: str) -> bool:
    """Delete `name`, then check it is gone; False when it was not set."""
    _check_name(name)
    existed = _call("read", "get_password", name) is not None
    if existed:
        _call("delete", "delete_password", name)
        if _call("read back", "get_password", name) is not None:
            raise SecretStoreError(f"the OS keyring still holds {name} after the delete")
    names = _names()
    if name in names:
        _save_names([n for n in names if n != name])
    return existed


def list_secret_names() -> list[str]:
    return sorted(_names())


def list_secrets() -> list[tuple[str, bool]]:
    """(name, present) for every name we set, and the Anthropic key if it was set by hand:
    a name whose value the keyring lost shows as not present."""
    indexed = set(_names())
    found = []
    for name in sorted(indexed | {ANTHROPIC_KEY_NAME}):
        present = _call("read", "get_password", name) is not None
        if present or name in indexed:
            found.append((name, present))
    return found


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
