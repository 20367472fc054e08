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


def make_ctx(
    root: Path, *, approve: bool = True, config: Config | None = None, workspace: Path | None = None
) -> tuple:
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
        root=root, task_id="t-1", config=config, emit=emit, procs=ProcessGroups(), ask=ask,
        workspace=workspace,
    )  # fmt: skip
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
        assert result.is_error  # /var/tmp is not even there: the sandbox has its own
        assert not (outside / "f").exists()
        result = await execute_bash.tool.run({"command": "echo x > /etc/livhana-probe"}, ctx)
        assert result.is_error and "Read-only file system" in result.output
        assert not os.path.exists("/etc/livhana-probe")
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
    ctx, _, _ = make_ctx(tree, workspace=repo)
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


# -- what the sandbox shows: only the worktree and what a build needs --------------------------
def _git_repo_with_worktree(tmp_path: Path) -> tuple[Path, Path]:
    repo, tree = tmp_path / "repo", tmp_path / "tree"
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "a.txt").write_text("one\n")
    subprocess.run([*git, "-C", str(repo), "add", "a.txt"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "init"], check=True)
    subprocess.run([*git, "-C", str(repo), "worktree", "add", "-q", str(tree), "-b", "t"], check=True)
    return repo, tree


async def test_a_rewritten_dot_git_file_shows_nothing_new(tmp_path: Path) -> None:
    """The worktree's `.git` file is the model's to write: the git dir to show comes from
    the workspace the engine knows, so `gitdir: <a private dir>` shows nothing."""
    repo, tree = _git_repo_with_worktree(tmp_path)
    private = tmp_path / "operator-ssh"  # under /tmp: hidden unless something binds it
    private.mkdir()
    (private / "id_rsa").write_text("PRIVATE-MARKER-9Qz\n")
    ctx, _, _ = make_ctx(tree, workspace=repo)
    result = await execute_bash.tool.run({"command": f"echo 'gitdir: {private}' > .git"}, ctx)
    assert not result.is_error, result.output
    result = await execute_bash.tool.run({"command": f"cat {private}/id_rsa; ls {private}"}, ctx)
    assert "PRIVATE-MARKER" not in result.output and "No such file" in result.output


async def test_the_operators_checkout_is_hidden_but_its_git_dir_works() -> None:
    """The task works in its worktree; the operator's checkout holds what git ignores (.env
    with live keys), so only its .git is shown."""
    base = Path(tempfile.mkdtemp(dir="/var/tmp"))  # outside the sandbox's private /tmp
    try:
        repo, tree = _git_repo_with_worktree(base)
        (repo / ".env").write_text("API=LIVE-KEY-MARKER-2Wd\n")
        ctx, _, _ = make_ctx(tree, workspace=repo)
        command = f"cat {repo}/.env; ls -A {repo}; git log --oneline -1 && git status --short"
        result = await execute_bash.tool.run({"command": command}, ctx)
        assert "LIVE-KEY-MARKER" not in result.output and ".env" not in result.output.split(
            "--- stderr ---")[0], result.output
        assert "init" in result.output
    finally:
        shutil.rmtree(base)


async def test_repo_config_credentials_are_not_shown_and_git_still_works(tmp_path: Path) -> None:
    repo, tree = _git_repo_with_worktree(tmp_path)
    token, header = "tok3n-Secr3t-Zq81", "dG9rLWhlYWRlci1aOTk="
    config = repo / ".git" / "config"
    original = config.read_text() + (
        f'[remote "origin"]\n\turl = https://op:{token}@example.com/x.git\n'
        f'[remote "mirror"]\n\turl = https://{token}@mirror.example.com/x.git\n'
        f"[http]\n\textraHeader = AUTHORIZATION: basic {header}\n"
        f'[url "https://{token}@example.com/"]\n\tinsteadOf = https://example.com/\n'
    )
    config.write_text(original)
    (tree / "a.txt").write_text("two\n")
    ctx, _, _ = make_ctx(tree, workspace=repo)
    command = (
        f"cat {config}; git config --get remote.origin.url; git config --list; "
        "git status --short && git log --oneline -1 && git diff --stat"
    )
    result = await execute_bash.tool.run({"command": command}, ctx)
    assert not result.is_error, result.output
    assert token not in result.output and header not in result.output
    assert "https://op@example.com/x.git" in result.output  # the remote is still there
    assert "M a.txt" in result.output and "init" in result.output
    assert config.read_text() == original  # the operator's file is untouched


async def test_homes_data_dir_and_runtime_dirs_are_hidden_toolchains_kept(
    tmp_path: Path, monkeypatch
) -> None:
    """HOME outside /tmp (the sandbox's /tmp is private, which would prove nothing)."""
    base = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        home, data = base / "home", base / "data"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "id_rsa").write_text("PRIVATE-MARKER-9Qz\n")
        (home / ".bash_history").write_text("export TOKEN=HISTORY-MARKER-3Lm\n")
        cargo = home / ".cargo"
        (cargo / "bin").mkdir(parents=True)
        (cargo / "bin" / "mytool").write_text("#!/bin/sh\necho TOOL-RAN\n")
        (cargo / "bin" / "mytool").chmod(0o755)
        (cargo / "credentials.toml").write_text('[registry]\ntoken = "CARGO-MARKER-7Kx"\n')
        local_bin = home / ".local" / "bin"
        local_bin.mkdir(parents=True)
        (local_bin / "othertool").write_text("#!/bin/sh\necho OTHER-RAN\n")
        (local_bin / "othertool").chmod(0o755)
        keyring_dir = home / ".local" / "share" / "python_keyring"
        keyring_dir.mkdir(parents=True)
        (keyring_dir / "keyring_pass.cfg").write_text("[x]\nk = S0VZUklORy1NQVJLRVI=\n")
        (data / "worktrees" / "t1").mkdir(parents=True)
        (data / "livhana.db").write_text("STORE-MARKER-5Tq")
        (data / "shadow" / "other").mkdir(parents=True)
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.delenv("CARGO_HOME", raising=False)
        monkeypatch.setenv("PATH", f"{cargo / 'bin'}:{local_bin}:{os.environ['PATH']}")
        config = Config()
        config.data_dir = data
        ctx, _, _ = make_ctx(data / "worktrees" / "t1", config=config)
        command = (
            f"cat {home}/.ssh/id_rsa {home}/.bash_history {keyring_dir}/*; "
            f"cat {cargo}/credentials.toml; cat {data}/livhana.db; "
            "ls -A /root /home /run /run/user; mytool; othertool"
        )
        result = await execute_bash.tool.run({"command": command}, ctx)
        out = result.output
        for marker in ("PRIVATE-MARKER", "HISTORY-MARKER", "S0VZUklORy1NQVJLRVI", "CARGO-MARKER",
                       "STORE-MARKER"):  # fmt: skip
            assert marker not in out, (marker, out)
        assert "TOOL-RAN" in out and "OTHER-RAN" in out  # toolchains in the home still work
        # What is listed: the toolchain dirs (read-only) and the worktree, nothing else.
        result = await execute_bash.tool.run({"command": f"ls -A {home} {data} {home}/.local"}, ctx)
        assert not result.is_error, result.output
        listed = result.output.split("--- stdout ---", 1)[1]
        for name in (".ssh", ".bash_history", "livhana.db", "shadow", "python_keyring"):
            assert name not in listed, (name, listed)
        # Of the real /root (our account's home here), only toolchain dirs may show.
        result = await execute_bash.tool.run({"command": "ls -A /root 2>/dev/null"}, ctx)
        listed = result.output.split("--- stdout ---", 1)[1].split() if "stdout" in result.output else []
        assert all((Path("/root") / name).is_dir() for name in listed if name), listed
    finally:
        shutil.rmtree(base)


async def test_private_system_files_are_masked(worktree: Path) -> None:
    """As root the engine could read /etc/shadow; the sandbox sees /etc as any local user."""
    from agent.sandbox_view import private_etc_entries

    private = [p for p in private_etc_entries() if os.path.isfile(p) and os.path.getsize(p)]
    if not private:
        pytest.skip("no readable private file under /etc for this user")
    path = "/etc/shadow" if "/etc/shadow" in private else private[0]
    first = Path(path).read_text(errors="replace").splitlines()[0]
    ctx, _, _ = make_ctx(worktree)
    result = await execute_bash.tool.run({"command": f"cat {path}"}, ctx)
    assert first not in result.output


def test_private_etc_scan_finds_what_others_cannot_read(tmp_path: Path) -> None:
    from agent.sandbox_view import private_etc_entries

    (tmp_path / "public.conf").write_text("x")
    (tmp_path / "shadow").write_text("x")
    (tmp_path / "shadow").chmod(0o640)
    (tmp_path / "ssl" / "private").mkdir(parents=True)
    (tmp_path / "ssl" / "private").chmod(0o700)
    (tmp_path / "ssl" / "certs").mkdir()
    (tmp_path / "ssl" / "certs" / "ca.pem").write_text("x")
    found = private_etc_entries(str(tmp_path))
    assert set(found) == {str(tmp_path / "shadow"), str(tmp_path / "ssl" / "private")}


async def test_env_has_no_socket_pointers_nor_known_secret_values(worktree: Path, monkeypatch) -> None:
    from agent.redact import Redactor, redact_logs

    secret = "op-Known-Value-4Rk8Zt"
    redactor = Redactor({"deploy_token": secret})  # an engine in this process knows it
    redact_logs(redactor)
    pointers = {
        "SSH_AUTH_SOCK": "/run/user/0/ssh-agent.sock",
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/0/bus",
        "XDG_RUNTIME_DIR": "/run/user/0",
        "GPG_AGENT_INFO": "/run/user/0/gnupg/S.gpg-agent:0:1",
        "DISPLAY": ":0",
        "TMUX": "/tmp/tmux-0/default,123,0",
    }
    for name, value in pointers.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BUILD_OPTS", f"--flag {secret}")  # a known secret under any name
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pg-Pa55-w0rd@db/app")
    monkeypatch.setenv("PLAIN_SETTING", "visible")
    ctx, _, _ = make_ctx(worktree)
    result = await execute_bash.tool.run({"command": "env"}, ctx)
    assert "PLAIN_SETTING=visible" in result.output
    for name in [*pointers, "BUILD_OPTS", "DATABASE_URL"]:
        assert f"{name}=" not in result.output, result.output
    assert secret not in result.output and "pg-Pa55-w0rd" not in result.output
    del redactor


async def test_builds_still_work_in_the_sandbox(worktree: Path) -> None:
    (worktree / "test_x.py").write_text("def test_x():\n    assert 6 * 7 == 42\n")
    ctx, _, _ = make_ctx(worktree)
    command = (
        f"python3 -c 'print(6*7)' && {sys.executable} -m pytest -q -p no:cacheprovider test_x.py"
        " && git --version && ls /usr/bin/env && cat /etc/passwd | head -1"
    )
    result = await execute_bash.tool.run({"command": command}, ctx)
    assert not result.is_error, result.output
    assert "42" in result.output and "1 passed" in result.output


async def test_config_expose_adds_a_dir_but_never_a_home(worktree: Path, monkeypatch, caplog) -> None:
    base = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        tools, home = base / "tools", base / "home"
        tools.mkdir()
        (tools / "marker.txt").write_text("TOOLS-VISIBLE\n")
        home.mkdir()
        (home / "notes.txt").write_text("HOME-MARKER-1Pq\n")
        monkeypatch.setenv("HOME", str(home))
        ctx, _, _ = make_ctx(worktree)
        command = f"cat {tools}/marker.txt {home}/notes.txt"
        result = await execute_bash.tool.run({"command": command}, ctx)
        assert "TOOLS-VISIBLE" not in result.output  # not a build dir until listed
        ctx.config.sandbox.expose = [str(tools), str(home)]
        result = await execute_bash.tool.run({"command": command}, ctx)
        assert "TOOLS-VISIBLE" in result.output and "HOME-MARKER" not in result.output
        assert f"sandbox.expose: {home} is not shown" in caplog.text
    finally:
        shutil.rmtree(base)
