"""Demo mode: a bundled sample project, scripted model turns, a store of its own.

`livhana-cockpit --demo` needs no API key and no network. It copies `workspace/` into a
temporary dir, makes it a git repo, opens the real engine there with the scripted model
of `script.json`, and submits a few tasks so every panel has real data: one succeeds, one
waits to apply, one waits on a risky command, one fails, one is rolled back, and one runs
for a minute.

The demo is kept apart from the operator's own data: its store, config and policy live in
its temp dir (printed at start and exit, so the CLI can be pointed at it with
`--data-dir`), it reads the operator's theme and keymap but saves a change of them only
in its own config, and everything goes when it exits.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.events import AWAITING_APPROVAL, END_STATES

if TYPE_CHECKING:
    from agent.config import Config
    from agent.engine import Engine
    from agent.models.base import Model

HERE = Path(__file__).parent
SCRIPT = HERE / "script.json"
WORKSPACE = HERE / "workspace"
ENDED = END_STATES
SETTLED = (*ENDED, AWAITING_APPROVAL)

# (title, approve mode, what the demo does once the task settles)
TASKS: tuple[tuple[str, str, str], ...] = (
    ("Fix the off-by-one in paginate()", "auto", ""),
    ("Add a CHANGELOG for 0.1.1", "auto", "rollback"),
    ("Migrate the settings to YAML", "ask", ""),
    ("Validate prices in parse_price()", "ask", ""),
    ("Clean the build artifacts", "ask", ""),
)
LIVE_TASK = ("Profile the test suite", "auto")
# The demo's own policy: destructive cleanups ask, so the queue shows a command request.
DEMO_POLICY = """\
mode = "normal"

[[commands]]
pattern = '\\bgit\\s+clean\\b|\\brm\\s+-[a-zA-Z]*r'
decision = "ask"
description = "demo: destructive cleanups need the operator"
"""


@dataclass
class DemoEnv:
    config: Config
    model_factory: Callable[[str], Model]
    workspace: Path


def _git(cwd: Path, *args: str) -> None:
    env = {"GIT_AUTHOR_NAME": "Demo", "GIT_AUTHOR_EMAIL": "demo@livhana.local",
           "GIT_COMMITTER_NAME": "Demo", "GIT_COMMITTER_EMAIL": "demo@livhana.local",
           "PATH": "/usr/local/bin:/usr/bin:/bin"}
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


class DemoPlan:
    """What to set up (`prepare`, in a thread) and what to submit (`seed`, on the loop)."""

    def __init__(self, base: Path | None = None, live: bool = True,
                 tasks: tuple[tuple[str, str, str], ...] = TASKS) -> None:
        self.base = base
        self.live = live
        self.tasks = tasks
        self._own_dir: Path | None = None
        self.task_ids: list[str] = []
        self.seeded = asyncio.Event()

    def reserve(self) -> Path:
        """The demo's own folder (made now, so it can be named before the cockpit opens)."""
        if self.base is None:
            self.base = self._own_dir = Path(tempfile.mkdtemp(prefix="livhana-demo-"))
        return self.base

    def prepare(self) -> DemoEnv:
        from agent.config import load_config
        from agent.models import make_model

        base = self.reserve()
        workspace = base / "shopcart"
        if not workspace.exists():
            shutil.copytree(WORKSPACE, workspace,
                            ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
            _git(workspace, "init", "-q", "-b", "main")
            _git(workspace, "add", "-A")
            _git(workspace, "commit", "-q", "-m", "shopcart 0.1.0")
        data = base / "data"
        data.mkdir(parents=True, exist_ok=True)
        policy = data / "policy.toml"
        if not policy.exists():
            policy.write_text(DEMO_POLICY, encoding="utf-8")
        config = load_config(data_dir=data, config_path=data / "config.toml")
        spec = f"scripted:{SCRIPT}"
        config.engine.model = spec
        config.engine.heartbeat_s = 1.0

        def factory(_spec: str) -> Model:
            return make_model(spec)

        return DemoEnv(config, factory, workspace)

    async def seed(self, engine: Engine, workspace: str) -> None:
        """Submit the demo tasks one after another, so the result is the same every run."""
        try:
            for title, approve, then in self.tasks:
                task_id = await engine.submit(title, workspace, approve=approve)
                self.task_ids.append(task_id)
                # An auto task passes through awaiting_approval on its way: wait for its end.
                task = await settle(engine, task_id, ends_only=approve == "auto")
                if then == "rollback" and task["state"] == "succeeded":
                    await engine.rollback(task_id)
            if self.live:
                self.task_ids.append(await engine.submit(LIVE_TASK[0], workspace,
                                                         approve=LIVE_TASK[1]))
        finally:
            self.seeded.set()

    def cleanup(self) -> None:
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None


async def settle(
    engine: Engine, task_id: str, timeout_s: float = 60, ends_only: bool = False
) -> dict[str, Any]:
    """Wait until the task ended or (unless `ends_only`) waits for the operator."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    settled = ENDED if ends_only else SETTLED
    while True:
        task = await engine.get(task_id)
        assert task is not None
        if task["state"] in settled or loop.time() > deadline:
            return task
        await asyncio.sleep(0.05)

