"""The bubblewrap sandbox, for real: no network, nothing writable outside the worktree."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent import sandbox
from agent.config import Config
from agent.procs import ProcessGroups
from agent.tools import execute_bash
from agent.tools.base import ToolContext


def make_ctx(root: Path, *, approve: bool = True, config: Config | None = None) -> tuple:
    events: list[dict[str, Any]] = []
    asks: list[tuple[str, str, dict[str, Any]]] = []

    async def emit(type_: str, **payload: Any) -> None:
        events.append({"type": type_, **payload})

    async def ask(kind: str, summary: str, detail: dict[str, Any]) -> bool:
        asks.append((kind, summary, detail))
        return approve

    if config is None:
        config = Config()
        config.data_dir = root.parent / "data"
    ctx = ToolContext(
        root=root, task_id="t-1", config=config, emit=emit, procs=ProcessGroups(), ask=ask
    )
    return ctx, events, asks


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    assert sandbox.bwrap_available(), sandbox.sandbox_status()
    root = tmp_path / "wt"
    root.mkdir()
    return root


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    yield srv.getsockname()[1]
    srv.close()


def connect_cmd(port: int) -> str:
    return f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\""


def test_status_reports_a_working_bwrap() -> None:
    status = sandbox.sandbox_status()
    assert status["available"] is True
    assert status["version"].startswith("bubblewrap")


def test_argv_binds_worktree_at_real_path_and_drops_network(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    argv = sandbox.sandbox_argv("echo hi", link, network=False)
    assert argv[-4:] == ["--", "bash", "-c", "echo hi"]
    i = argv.index("--bind")
    assert argv[i + 1 : i + 3] == [str(real), str(real)]
    assert "--unshare-net" in argv and "--die-with-parent" in argv and "--new-session" in argv
    assert argv[argv.index("--chdir") + 1] == str(real)
    assert "--unshare-net" not in sandbox.sandbox_argv("echo hi", real, network=True)


async def test_network_is_blocked_in_the_sandbox(worktree: Path, listener: int) -> None:
    ctx, _, asks = make_ctx(worktree)
    result = await execute_bash.tool.run({"command": connect_cmd(listener)}, ctx)
    assert result.is_error and result.data["exit_code"] != 0
    assert "CONNECTED" not in result.output
    assert asks == []  # sandboxed: nothing to ask


async def test_network_allowed_when_policy_says_so(worktree: Path, listener: int) -> None:
    ctx, _, _ = make_ctx(worktree)
    ctx.config.sandbox.network = True
    result = await execute_bash.tool.run({"command": connect_cmd(listener)}, ctx)
    assert not result.is_error, result.output
    assert "CONNECTED" in result.output


async def test_writes_land_only_in_the_worktree(worktree: Path) -> None:
    # /var/tmp, not /tmp: the sandbox's /tmp is private, which would prove nothing here.
    outside = Path(tempfile.mkdtemp(dir="/var/tmp"))
    leak = f"/tmp/leak-{uuid.uuid4().hex}"
    try:
        ctx, _, _ = make_ctx(worktree)
        result = await execute_bash.tool.run({"command": f"echo x > {outside}/f"}, ctx)
        assert result.is_error and "Read-only file system" in result.output
        assert not (outside / "f").exists()
        result = await execute_bash.tool.run(
            {
                "command": f"echo y > inside.txt && mkdir -p sub && echo z > sub/n && echo t > {leak}"
            },
            ctx,
        )
        assert not result.is_error, result.output
        assert (worktree / "inside.txt").read_text() == "y\n"
        assert (worktree / "sub" / "n").read_text() == "z\n"
        assert not os.path.exists(leak)  # the sandbox's /tmp is its own
        result = await execute_bash.tool.run({"command": "echo bad > $HOME/.profile_x"}, ctx)
        assert not result.is_error  # HOME is private scratch, not the operator's home
        assert not (Path.home() / ".profile_x").exists()
    finally:
        shutil.rmtree(outside)


async def test_secrets_are_not_passed_to_commands(worktree: Path, monkeypatch) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", "sk-very-secret")
    monkeypatch.setenv("PLAIN_SETTING", "visible")
    ctx, _, _ = make_ctx(worktree)
    result = await execute_bash.tool.run({"command": "env"}, ctx)
    assert "sk-very-secret" not in result.output
    assert "PLAIN_SETTING=visible" in result.output


@pytest.fixture
def no_bwrap(monkeypatch):
    monkeypatch.setattr(sandbox, "_probe", lambda: (False, "", "bwrap missing (test)"))


async def test_unsandboxed_command_warns_and_asks(tmp_path: Path, no_bwrap) -> None:
    ctx, events, asks = make_ctx(tmp_path, approve=False)
    assert sandbox.sandbox_argv("true", tmp_path, network=False) == ["bash", "-c", "true"]
    result = await execute_bash.tool.run({"command": "touch ran"}, ctx)
    assert result.is_error and result.output == "denied by operator"
    assert not (tmp_path / "ran").exists()
    assert [e["type"] for e in events] == ["warning"]
    assert "UNSANDBOXED" in events[0]["message"]
    assert asks[0][0] == "command" and asks[0][2]["sandboxed"] is False

    ctx, events, asks = make_ctx(tmp_path, approve=True)
    result = await execute_bash.tool.run({"command": "touch ran"}, ctx)
    assert not result.is_error and (tmp_path / "ran").exists()
    assert len(asks) == 1 and events[0]["type"] == "warning"
    assert result.data["sandboxed"] is False


async def test_require_sandbox_refuses_without_asking(tmp_path: Path, no_bwrap) -> None:
    ctx, _, asks = make_ctx(tmp_path)
    ctx.config.sandbox.require = True
    result = await execute_bash.tool.run({"command": "touch ran"}, ctx)
    assert result.is_error and "sandbox required" in result.output
    assert asks == [] and not (tmp_path / "ran").exists()


async def test_git_worktree_readable_but_repo_read_only(tmp_path: Path) -> None:
    repo, tree = tmp_path / "repo", tmp_path / "tree"
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "a.txt").write_text("one\n")
    subprocess.run([*git, "-C", str(repo), "add", "a.txt"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "init"], check=True)
    subprocess.run(
        [*git, "-C", str(repo), "worktree", "add", "-q", str(tree), "-b", "t"], check=True
    )
    (tree / "a.txt").write_text("two\n")
    ctx, _, _ = make_ctx(tree)
    # The repository is under /tmp, which the sandbox replaces: git must still find it.
    result = await execute_bash.tool.run({"command": "git status --short && git diff --stat"}, ctx)
    assert not result.is_error, result.output
    assert "M a.txt" in result.output
    result = await execute_bash.tool.run({"command": "git commit -qam sneaky"}, ctx)
    assert result.is_error  # history belongs to the engine's checkpoints, not the command
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--all", "--oneline"], capture_output=True, text=True
    )
    assert "sneaky" not in log.stdout
