"""Configuration: a strict schema loaded from TOML. Unknown keys and wrong types are errors.

Paths: the data dir comes from --data-dir, else $LIVHANA_DATA_DIR, else platformdirs.
The config file is `<data dir>/config.toml` unless $LIVHANA_CONFIG points elsewhere.
Both are made absolute at load: git resolves a relative worktree path against the
workspace, not our cwd, so a relative data dir would land worktrees in the operator's tree.

Numbers carry their allowed range as field metadata (`_ranged`); a value outside it (and
TOML's nan and inf, which no comparison catches: `max_cost_usd = nan` would let any cost
through) is a one-line ConfigError naming the key, never a stuck queue or a traceback
later. Every number has a ceiling too: a value no one means (a 10^23 s timeout) is a typo.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from .errors import ConfigError
from .text import lone_surrogate, marked

# The newest Sonnet the installed SDK lists that still takes a manual thinking budget
# (Sonnet 5 and later answer `thinking.type=enabled` with a 400; 4.5 reached end-of-life
# on 2026-11-30).
DEFAULT_MODEL = "claude-sonnet-4-6"


def _ranged(default: Any, low: float, high: float, *, above: bool = False) -> Any:
    """A numeric field within [low, high] (or (low, high] with `above`)."""
    return field(default=default, metadata={"min": low, "max": high, "above": above})


# Per-task caps a run may set on the command line (`--max-steps`, `--max-cost`).
MAX_STEPS_CEILING = 100_000
MAX_COST_CEILING_USD = 100_000.0
DAY_S = 86_400


def task_caps_problem(max_steps: object, max_cost: object) -> str | None:
    """Why a task's own caps (from the CLI, the API, ...) are unusable, or None. A nan cap
    would never trigger: every comparison with it is false."""
    if max_steps is not None and (
        isinstance(max_steps, bool)
        or not isinstance(max_steps, int)
        or not 1 <= max_steps <= MAX_STEPS_CEILING
    ):
        return f"max steps must be a whole number from 1 to {MAX_STEPS_CEILING:,}, got {_got(max_steps)}"
    if max_cost is not None and (
        isinstance(max_cost, bool)
        or not isinstance(max_cost, int | float)
        or not math.isfinite(max_cost)
        or not 0 < max_cost <= MAX_COST_CEILING_USD
    ):
        return f"max cost must be more than 0 and at most {MAX_COST_CEILING_USD:,.0f} USD, got {_got(max_cost)}"
    return None


@dataclass
class EngineConfig:
    model: str = DEFAULT_MODEL
    workspace: str = ""  # the daemon's (and the API's) project folder when none is given
    max_concurrent: int = _ranged(4, 1, 256)
    max_steps: int = _ranged(60, 1, MAX_STEPS_CEILING)
    max_tokens: int = _ranged(3_000_000, 1, 10**10)  # per task, input+output
    max_cost_usd: float = _ranged(5.0, 0, MAX_COST_CEILING_USD, above=True)  # per task
    daily_budget_usd: float = _ranged(50.0, 0, 10 * MAX_COST_CEILING_USD, above=True)
    verify_retries: int = _ranged(2, 0, 100)
    thinking_budget: int = _ranged(10_000, 0, 1_000_000)  # 0 turns thinking off
    max_output_tokens: int = _ranged(16_000, 1, 1_000_000)
    command_timeout_s: int = _ranged(300, 1, DAY_S)
    # identical tool calls in a row before the task pauses
    stall_repeats: int = _ranged(4, 2, 10_000)
    # steps with no file change and no plan progress before it pauses
    stall_steps: int = _ranged(15, 1, MAX_STEPS_CEILING)
    heartbeat_s: float = _ranged(2.0, 0.1, 60)  # the control loop ticks every 0.1 s
    model_retries: int = _ranged(4, 0, 20)  # retries of an overloaded/failed model call
    retry_base_s: float = _ranged(1.0, 0, 60)  # first backoff; doubles each retry
    # 0: wait for the operator; otherwise deny after this
    approval_timeout_s: float = _ranged(0.0, 0, 30 * DAY_S)


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
    bell: bool = True  # ring the terminal bell when a request starts waiting
    desktop_notify: bool = True  # and send a desktop notification (OSC 9/777) if shown


@dataclass
class LearningsConfig:
    """How learnings are given and measured (agent/learnings/)."""

    # Share of tasks run without any learning (pinned ones aside): the baseline.
    holdout: float = _ranged(0.10, 0, 1)
    limit: int = _ranged(8, 0, 100)  # most learnings given to one task, pinned ones aside
    # Cosine of a task's title and a learning from which the learning is relevant to it
    # (given, or counted as a comparable task without it).
    min_relevance: float = _ranged(0.1, 0, 1)
    # Tasks with an outcome needed on each side (with / without) before any effect is
    # claimed, or a learning retired for one.
    min_tasks: int = _ranged(5, 1, 1_000_000)
    auto_retire: bool = True  # retire a learning whose effect is clearly negative


@dataclass
class APIConfig:
    enabled: bool = False  # the cockpit serves the API too (the daemon does unless --no-api)
    host: str = "127.0.0.1"
    port: int = field(default=4002, metadata={"min": 1, "max": 65535})
    allow_remote: bool = False  # a non-loopback host needs this (or --api-allow-remote)
    # Browser origins allowed to call the API (a web UI you trust); any other Origin: 403.
    allowed_origins: list[str] = field(default_factory=list)
    # Folders API requests may name as their workspace (empty: any but root, home, system).
    workspaces: list[str] = field(default_factory=list)
    rate_limit: float = _ranged(50.0, 0, 100_000, above=True)  # requests/s per token
    rate_burst: int = _ranged(200, 1, 1_000_000)


GC_AUTO = ("daily", "start", "off")


@dataclass
class GCConfig:
    """Pruning what ended tasks leave on disk (agent/prune.py)."""

    keep_days: float = _ranged(14.0, 0, 36_500)  # leftovers of tasks ended longer ago go
    auto: str = "daily"  # daily: at most once a day; start: at each start; off: only `gc`

    def __post_init__(self) -> None:
        if self.auto not in GC_AUTO:
            raise ConfigError(
                f"config: 'config.gc.auto' must be one of {', '.join(GC_AUTO)}, got {_got(self.auto)}"
            )


@dataclass
class ImproveConfig:
    # Log files the daily job reads: globs relative to the workspace (or absolute).
    logs: list[str] = field(default_factory=lambda: ["logs/**/*.log", "*.log"])
    # Accepted proposals run as tasks at most this many at a time (`improve auto`, daemon).
    auto_concurrent: int = _ranged(1, 1, 64)
    # The daemon runs accepted proposals by itself (they still wait for apply approval).
    auto_run: bool = True
    # A signature this many times its usual daily rate (and at least `spike_min` times in
    # the last day) is a spike; one never seen in the baseline needs `spike_min` alone.
    spike_factor: float = _ranged(5.0, 1, 10_000, above=True)
    spike_min: int = _ranged(3, 1, 1_000_000)
    slow_tool_s: float = _ranged(30.0, 0, DAY_S, above=True)  # a tool call slower is slow
    max_proposals: int = _ranged(5, 1, 100)  # per model call


@dataclass
class SchedulesConfig:
    """Cron expressions, local time; "" disables the job."""

    daily: str = "0 2 * * *"
    weekly: str = "0 6 * * 1"
    monthly: str = "0 8 1 * *"


@dataclass
class NotifyConfig:
    """How a scheduled run that produced proposals or failed is announced, besides the
    toast in an open cockpit."""

    desktop: bool = False  # notify-send, when installed
    webhook: str = ""  # POSTed a JSON summary; may hold a token: never logged
    timeout_s: float = _ranged(5.0, 0, 120, above=True)


@dataclass
class BigQueryConfig:
    """Export to BigQuery (agent/export): off unless both project and dataset are set.
    Credentials: the keyring's `bigquery_credentials` (a service-account JSON key), else
    Application Default Credentials (none with `api_endpoint`: an emulator or a test)."""

    project: str = ""
    dataset: str = ""
    location: str = ""  # where a new dataset is made ("": BigQuery's default)
    api_endpoint: str = ""  # tests or private endpoints
    interval_s: float = _ranged(30.0, 0.05, DAY_S)  # gather and send this often
    batch_rows: int = _ranged(500, 1, 10_000)  # rows per insertAll request
    retry_base_s: float = _ranged(2.0, 0.01, 3600)  # first backoff; doubles each failure
    retry_max_s: float = _ranged(300.0, 0.01, DAY_S)
    timeout_s: float = _ranged(30.0, 0.1, 3600)  # per BigQuery request
    pull_learnings: bool = True  # bring teammates' learnings into this store
    origin: str = ""  # how this machine's rows are marked ("": user@host)

    @property
    def enabled(self) -> bool:
        return bool(self.project.strip() and self.dataset.strip())


@dataclass
class Config:
    engine: EngineConfig = field(default_factory=EngineConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    api: APIConfig = field(default_factory=APIConfig)
    improve: ImproveConfig = field(default_factory=ImproveConfig)
    schedules: SchedulesConfig = field(default_factory=SchedulesConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    learnings: LearningsConfig = field(default_factory=LearningsConfig)
    gc: GCConfig = field(default_factory=GCConfig)
    bigquery: BigQueryConfig = field(default_factory=BigQueryConfig)
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


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_range(f: dataclasses.Field[Any], value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config: '{where}' must be a finite number, got {_got(value)}")
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if low is not None:
        above = f.metadata.get("above", False)
        if value < low or (above and value == low):
            bound = f"> {low}" if above else f">= {low}"
            raise ConfigError(f"config: '{where}' must be {bound}, got {_got(value)}")
    if high is not None and value > high:
        raise ConfigError(f"config: '{where}' must be <= {high}, got {_got(value)}")


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
        try:
            return float(value)
        except OverflowError:  # an integer past 1e308: as absurd as inf
            raise ConfigError(
                f"config: '{where}' must be a finite number, got {str(value)[:20]}..."
            ) from None
    if hint in (int, float, str, bool) and (
        not isinstance(value, hint) or (hint is int and isinstance(value, bool))
    ):
        raise ConfigError(f"config: '{where}' must be {hint.__name__}, got {_got(value)}")
    return value


def load_config(data_dir: Path | None = None, config_path: Path | None = None) -> Config:
    data_dir = (data_dir or default_data_dir()).expanduser().absolute()
    path = config_path or (
        Path(os.environ["LIVHANA_CONFIG"]) if os.environ.get("LIVHANA_CONFIG") else None
    )
    path = (path or data_dir / "config.toml").expanduser().absolute()
    for what, where in (("data dir", data_dir), ("config file", path)):
        # Paths under the data dir are stored as text (worktrees, reports): they must be UTF-8.
        if lone_surrogate(str(where)):
            raise ConfigError(
                f"config: the {what} path is not valid UTF-8 ('{marked(str(where))}'); "
                "use a UTF-8 name"
            )
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
    if "schedules" in raw:  # the defaults are valid: croniter loads only for the operator's
        from .cron import check_cron

        for job in ("daily", "weekly", "monthly"):
            if problem := check_cron(getattr(config.schedules, job)):
                raise ConfigError(f"config: 'schedules.{job}' {problem}")
    if "notify" in raw and config.notify.webhook:
        from .notify import check_webhook

        if problem := check_webhook(config.notify.webhook):
            raise ConfigError(f"config: 'notify.webhook' {problem}")
    config.data_dir = data_dir
    config.config_path = path
    return config


def save_ui_settings(config: Config) -> None:
    """Persist the UI section (theme, keymap) into the config file, leaving the rest as the
    operator wrote it: through tomlkit, so comments, order and other sections are kept and
    every value is escaped (a key remapped to `ctrl+\\` must not break the next start),
    and atomically (a temp file beside it, then a rename: a crash leaves old or new)."""
    import tomlkit  # only when saving: the cockpit's first frame does not need it
    from tomlkit.exceptions import TOMLKitError

    assert config.config_path is not None
    path = config.config_path
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        doc = tomlkit.parse(text)
    except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
        raise ConfigError(f"config: cannot update {path}: {exc}") from None
    ui = doc.get("ui")
    if not isinstance(ui, dict):  # no [ui] yet (or not a table, which load refuses anyway)
        ui = tomlkit.table()
        doc["ui"] = ui
    ui["theme"] = config.ui.theme
    ui["bell"] = config.ui.bell
    ui["desktop_notify"] = config.ui.desktop_notify
    if config.ui.keymap:
        keymap = tomlkit.inline_table()
        keymap.update(sorted(config.ui.keymap.items()))
        ui["keymap"] = keymap
    elif "keymap" in ui:
        del ui["keymap"]
    _write_atomic(path, tomlkit.dumps(doc))


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temp file in the same folder and a rename, keeping
    the file's permission bits (a config may name a database's credentials)."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
