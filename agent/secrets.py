"""OS-keyring secrets, all under ONE service name, "livhana-cockpit": the Anthropic key,
the HTTP API's signing secret, the BigQuery service account and any connector's credential
(KNOWN lists the ones the cockpit itself uses; any other name is a connector's).

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
from dataclasses import dataclass
from typing import Any

from .errors import CockpitError, MissingKeyError, UsageError

SERVICE = "livhana-cockpit"
INDEX_NAME = "__names__"
ANTHROPIC_KEY_NAME = "anthropic_api_key"
ANTHROPIC_KEY_ENV = "ANTHROPIC_API_KEY"
JWT_SECRET_NAME = "api_jwt_secret"
BIGQUERY_CREDENTIALS_NAME = "bigquery_credentials"
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


@dataclass(frozen=True)
class Known:
    """A secret the cockpit itself uses: what it is for, and what to do without a keyring."""

    name: str
    title: str
    purpose: str
    instead: str  # the way around a missing keyring, for this secret


KNOWN: tuple[Known, ...] = (
    Known(ANTHROPIC_KEY_NAME, "Anthropic API key", "the model (Claude)",
          "set ANTHROPIC_API_KEY in the environment instead"),
    Known(JWT_SECRET_NAME, "HTTP API signing secret", "signs the daemon API's tokens",
          "the API keeps it in a file only you can read (0600) in the data dir instead"),
    Known(BIGQUERY_CREDENTIALS_NAME, "BigQuery service account",
          "the BigQuery export and BigQuery databases (a JSON key file)",
          "use Application Default Credentials instead (`gcloud auth application-default login`)"),
)  # fmt: skip
KNOWN_BY_NAME = {k.name: k for k in KNOWN}
_BACKENDS = ("install a keyring backend (the Secret Service: `apt install gnome-keyring`; or "
             "`pip install keyrings.alt` for a file-based one)")  # fmt: skip
_FIX = f"set ANTHROPIC_API_KEY in the environment instead, or {_BACKENDS}"


def known(name: str) -> Known:
    """What `name` is: one of KNOWN, or a connector's credential."""
    return KNOWN_BY_NAME.get(name) or Known(
        name, name, "a connector's credential (redacted wherever it shows up)",
        "pass it to the tool that needs it through its own configuration")  # fmt: skip


def fix_for(name: str | None) -> str:
    """What to do on a machine without a keyring, for `name` (None: in general)."""
    if name is None or name == ANTHROPIC_KEY_NAME:
        return _FIX
    return f"{known(name).instead}, or {_BACKENDS}"


def _call(op: str, method: str, *args: str) -> Any:
    """Run one keyring call, turning any backend failure into a one-line error."""
    subject = args[0] if args and args[0] != INDEX_NAME else None
    try:
        import keyring

        _check_backend(keyring.get_keyring(), op, subject)
        return getattr(keyring, method)(SERVICE, *args)
    except SecretStoreError:
        raise
    except Exception as exc:  # backends raise anything: KeyringError, D-Bus, OSError...
        if type(exc).__name__ == "NoKeyringError":  # a headless box without Secret Service
            raise SecretStoreError(
                f"no OS keyring on this machine ({op}): {fix_for(subject)}") from None
        raise SecretStoreError(f"OS keyring unavailable ({op}): {_one_line(exc)}") from None


def backend_name(backend: Any) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def _check_backend(backend: Any, op: str, subject: str | None = None) -> None:
    """A backend that cannot keep anything is no keyring: null (`keyring --disable`), fail,
    or a chainer with nothing to chain."""
    from keyring.backends import chainer, fail, null

    empty_chain = isinstance(backend, chainer.ChainerBackend) and not backend.backends
    if isinstance(backend, null.Keyring | fail.Keyring) or empty_chain:
        nothing = "; nothing was stored" if op == "write" else ""
        raise SecretStoreError(
            f"no OS keyring on this machine ({backend_name(backend)}){nothing}: "
            f"{fix_for(subject)}"
        )


def keyring_problem() -> str | None:
    """Why secrets cannot be kept here (one line naming the fix), or None when they can."""
    try:
        import keyring

        _check_backend(keyring.get_keyring(), "check")
    except SecretStoreError as exc:
        return str(exc)
    except Exception as exc:
        return f"OS keyring unavailable: {_one_line(exc)}"
    return None


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
            f"the OS keyring did not keep {name} (nothing was stored): {fix_for(name)}"
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


def mask(name: str, value: str) -> str:
    """What `secrets get` shows: enough to tell two values apart, never enough to use one.
    A service-account key shows whose it is."""
    if name == BIGQUERY_CREDENTIALS_NAME:
        try:
            info = json.loads(value)
        except ValueError:
            info = None
        if isinstance(info, dict) and info.get("client_email"):
            key_id = str(info.get("private_key_id") or "")
            return (f"service account {info['client_email']} (project "
                    f"{info.get('project_id') or '?'}, key …{key_id[-4:]})")  # fmt: skip
    n = len(value)
    if n >= 20:
        shown = f"{value[:4]}…{value[-4:]}"
    elif n >= 10:
        shown = f"…{value[-2:]}"
    else:
        shown = "•" * 6
    return f"{shown} ({n} characters)"


def secret_parts(value: str) -> list[str]:
    """The value, and for a JSON key its secret fields on their own (a private key printed
    alone must be redacted as well as the whole file)."""
    parts = [value]
    if value.lstrip().startswith("{"):
        try:
            info = json.loads(value)
        except ValueError:
            return parts
        if isinstance(info, dict):
            for field in ("private_key", "private_key_id", "client_secret", "refresh_token"):
                item = info.get(field)
                if isinstance(item, str) and item.strip():
                    parts.append(item)
                    parts += [line for line in item.splitlines() if len(line) >= 40]
    return parts


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
            for part in secret_parts(value) if value else []:
                if part not in values:
                    values.append(part)
    except SecretStoreError:
        pass
    return values
