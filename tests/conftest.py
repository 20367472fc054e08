"""Shared fixtures. Every test gets its own data dir and a throwaway keyring, so nothing
touches the operator's store or keyring."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["tests.conftest_keyring"]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temp_keyring: Any) -> None:
    monkeypatch.setenv("LIVHANA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LIVHANA_CONFIG", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


async def until(predicate: Any, timeout: float = 5.0, every: float = 0.01) -> Any:
    """Poll `predicate` (sync or async) until it is truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        await asyncio.sleep(every)


async def pending_for(engine: Any, task_id: str) -> list[dict[str, Any]]:
    """The task's open requests, once the task itself shows it is waiting on them (the
    request row is written a moment before the state changes)."""
    from agent import events as ev

    if (await engine.get(task_id))["state"] != ev.AWAITING_APPROVAL:
        return []
    return await engine.store.approvals("pending", task_id=task_id)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The operator's project: a real git repo with one commit and a small test suite."""
    path = tmp_path / "project"
    path.mkdir()
    (path / "app.py").write_text("def greet(name):\n    return 'hello ' + name\n")
    (path / "README.md").write_text("# demo project\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "op@example.com")
    git(path, "config", "user.name", "Operator")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def write_script(path: Path, scripts: list[dict[str, Any]]) -> str:
    path.write_text(json.dumps({"scripts": scripts}))
    return f"scripted:{path}"


def cli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real command line as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "cockpit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        input=input,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture
def config(tmp_path: Path) -> Any:
    from agent.config import load_config

    cfg = load_config(tmp_path / "data")
    cfg.engine.heartbeat_s = 0.5
    return cfg


@pytest.fixture
async def engine_factory(config: Any) -> AsyncIterator[Any]:
    from agent.engine import Engine

    engines: list[Any] = []

    async def make(model_factory: Any = None, cfg: Any = None, role: str = "test") -> Any:
        e = await Engine.open(cfg or config, role=role, model_factory=model_factory)
        engines.append(e)
        return e

    yield make
    for e in engines:
        with contextlib.suppress(Exception):
            await e.close()
