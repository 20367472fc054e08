"""Configuration: a strict schema loaded from TOML. Unknown keys and wrong types are errors.

Paths: the data dir comes from --data-dir, else $LIVHANA_DATA_DIR, else platformdirs.
The config file is `<data dir>/config.toml` unless $LIVHANA_CONFIG points elsewhere.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from .errors import ConfigError

DEFAULT_MODEL = "claude-sonnet-4-5"


@dataclass
class EngineConfig:
    model: str = DEFAULT_MODEL
    max_concurrent: int = 4
    max_steps: int = 60
    max_tokens: int = 3_000_000  # per task, input+output
    max_cost_usd: float = 5.0  # per task
    daily_budget_usd: float = 50.0
    verify_retries: int = 2
    thinking_budget: int = 10_000
    max_output_tokens: int = 16_000
    command_timeout_s: int = 300
    stall_repeats: int = 4  # identical tool calls in a row before the task pauses
    stall_steps: int = 15  # steps with no file change and no plan progress before it pauses
    heartbeat_s: float = 2.0
    model_retries: int = 4  # retries of an overloaded/failed model call
    retry_base_s: float = 1.0  # first backoff; doubles each retry
    approval_timeout_s: float = 0  # 0: wait for the operator; otherwise deny after this


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


@dataclass
class UIConfig:
    theme: str = "livhana-dark"
    keymap: dict[str, str] = field(default_factory=dict)  # binding id -> keys


@dataclass
class APIConfig:
    host: str = "127.0.0.1"
    port: int = 4002


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
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"config: unknown key '{where}.{unknown[0]}'")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        values[key] = _coerce(hints[key], value, f"{where}.{key}")
    return cls(**values)


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
    data_dir = (data_dir or default_data_dir()).expanduser()
    path = config_path or (
        Path(os.environ["LIVHANA_CONFIG"]) if os.environ.get("LIVHANA_CONFIG") else None
    )
    path = path or data_dir / "config.toml"
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
