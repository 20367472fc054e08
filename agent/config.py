"""Configuration: a strict schema loaded from TOML. Unknown keys and wrong types are errors.

Paths: the data dir comes from --data-dir, else $LIVHANA_DATA_DIR, else platformdirs.
The config file is `<data dir>/config.toml` unless $LIVHANA_CONFIG points elsewhere.
Both are made absolute at load: git resolves a relative worktree path against the
workspace, not our cwd, so a relative data dir would land worktrees in the operator's tree.

Numbers carry their allowed range as field metadata (`_at_least`); a value outside it is
a one-line ConfigError naming the key, never a stuck queue or a traceback later.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from .errors import ConfigError

# The newest Sonnet the installed SDK lists that still takes a manual thinking budget
# (Sonnet 5 and later answer `thinking.type=enabled` with a 400; 4.5 reached end-of-life
# on 2026-11-30).
DEFAULT_MODEL = "claude-sonnet-4-6"


def _at_least(default: Any, low: float, *, above: bool = False) -> Any:
    """A numeric field with a floor: `low` allowed, or only values above it."""
    return field(default=default, metadata={"min": low, "above": above})


@dataclass
class EngineConfig:
    model: str = DEFAULT_MODEL
    max_concurrent: int = _at_least(4, 1)
    max_steps: int = _at_least(60, 1)
    max_tokens: int = _at_least(3_000_000, 1)  # per task, input+output
    max_cost_usd: float = _at_least(5.0, 0, above=True)  # per task
    daily_budget_usd: float = _at_least(50.0, 0, above=True)
    verify_retries: int = _at_least(2, 0)
    thinking_budget: int = _at_least(10_000, 0)  # 0 turns thinking off
    max_output_tokens: int = _at_least(16_000, 1)
    command_timeout_s: int = _at_least(300, 1)
    # identical tool calls in a row before the task pauses
    stall_repeats: int = _at_least(4, 2)
    # steps with no file change and no plan progress before it pauses
    stall_steps: int = _at_least(15, 1)
    heartbeat_s: float = _at_least(2.0, 0, above=True)
    model_retries: int = _at_least(4, 0)  # retries of an overloaded/failed model call
    retry_base_s: float = _at_least(1.0, 0)  # first backoff; doubles each retry
    # 0: wait for the operator; otherwise deny after this
    approval_timeout_s: float = _at_least(0.0, 0)


@dataclass
class DeployTarget:
    command: str = ""
    rollback: str = ""


@dataclass
class DatabaseConfig:
    kind: str = "sqlite"  # sqlite | bigquery
    path: str = ""  # sqlite file
    project: str = ""  # bigquery
    dataset: str = ""  # bigquery
    api_endpoint: str = ""  # bigquery; for tests or private endpoints


@dataclass
class SandboxConfig:
    network: bool = False
    require: bool = False  # refuse commands when bubblewrap is missing instead of asking
    # Extra read-only paths commands may see (a toolchain outside the usual places);
    # one that would show a home, the data dir or a secret store is refused.
    expose: list[str] = field(default_factory=list)


@dataclass
class UIConfig:
    theme: str = "livhana-dark"
    keymap: dict[str, str] = field(default_factory=dict)  # binding id -> keys


@dataclass
class APIConfig:
    host: str = "127.0.0.1"
    port: int = field(default=4002, metadata={"min": 1, "max": 65535})


@dataclass
class Config:
    engine: EngineConfig = field(default_factory=EngineConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    api: APIConfig = field(default_factory=APIConfig)
    deploy: dict[str, DeployTarget] = field(default_factory=dict)
    databases: dict[str, DatabaseConfig] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    data_dir: Path = field(default_factory=Path)
    config_path: Path | None = None

    @property
    def store_path(self) -> Path:
        return self.data_dir / "livhana.db"

    @property
    def policy_path(self) -> Path:
        return self.data_dir / "policy.toml"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def worktrees_dir(self) -> Path:
        return self.data_dir / "worktrees"


def default_data_dir() -> Path:
    env = os.environ.get("LIVHANA_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("livhana-cockpit", appauthor=False))


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"config: [{where}] must be a table")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"config: unknown key '{where}.{unknown[0]}'")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        values[key] = _coerce(hints[key], value, f"{where}.{key}")
        _check_range(fields[key], values[key], f"{where}.{key}")
    return cls(**values)


def _check_range(f: dataclasses.Field[Any], value: Any, where: str) -> None:
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if low is not None:
        above = f.metadata.get("above", False)
        if value < low or (above and value == low):
            bound = f"> {low}" if above else f">= {low}"
            raise ConfigError(f"config: '{where}' must be {bound}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"config: '{where}' must be <= {high}, got {value!r}")


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = getattr(hint, "__origin__", None)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)  # type: ignore[arg-type]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config: '{where}' must be a table")
        inner = hint.__args__[1]
        return {k: _coerce(inner, v, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config: '{where}' must be a list")
        return [_coerce(hint.__args__[0], v, where) for v in value]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (
        not isinstance(value, hint) or (hint is int and isinstance(value, bool))
    ):
        raise ConfigError(f"config: '{where}' must be {hint.__name__}, got {value!r}")
    return value


def load_config(data_dir: Path | None = None, config_path: Path | None = None) -> Config:
    data_dir = (data_dir or default_data_dir()).expanduser().absolute()
    path = config_path or (
        Path(os.environ["LIVHANA_CONFIG"]) if os.environ.get("LIVHANA_CONFIG") else None
    )
    path = (path or data_dir / "config.toml").expanduser().absolute()
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    raw.pop("data_dir", None)
    raw.pop("config_path", None)
    config: Config = _build(Config, raw, "config")
    config.data_dir = data_dir
    config.config_path = path
    return config


def save_ui_settings(config: Config) -> None:
    """Persist the UI section (theme, keymap) back into the config file, keeping the rest."""
    assert config.config_path is not None
    path = config.config_path
    lines = [line for line in _strip_section(path, "ui")]
    lines.append("[ui]")
    lines.append(f'theme = "{config.ui.theme}"')
    if config.ui.keymap:
        items = ", ".join(f'"{k}" = "{v}"' for k, v in sorted(config.ui.keymap.items()))
        lines.append(f"keymap = {{ {items} }}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _strip_section(path: Path, name: str) -> list[str]:
    if not path.exists():
        return []
    out: list[str] = []
    skipping = False
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped == f"[{name}]"
        if not skipping:
            out.append(line)
    return out
