"""No code from the model ever runs outside the sandbox through the engine's own git.

A hostile model (scripted) plants git config, hooks, attributes and nested repositories in
its worktree; each payload, if anything unsandboxed ran it, would write a marker and an env
dump OUTSIDE the worktree and append to the operator's README. The engine's git runs after
the task (commit, diff, checkpoints, apply, rollback), through the real CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, cli, git, write_script

# The one identity of every commit the engine makes (agent/gitcmd.py IDENTITY).
WHO = "Liv Hana <livhana@localhost>"
FAKE_KEY = "sk-ant-api03-FAKE-never-leaks-0123456789"
HOOKS = (
    "pre-commit post-commit post-checkout reference-transaction post-index-change "
    "pre-auto-gc post-rewrite prepare-commit-msg commit-msg fsmonitor-watchman"
)


def _evil(tmp_path: Path, repo: Path) -> str:
    """The payload script: harmless inside the sandbox (it cannot reach these paths there)."""
    return (
        "#!/bin/sh\n"
        f'echo "$1" >> {tmp_path / "marker"}\n'
        f"env >> {tmp_path / 'env.txt'}\n"
        f"echo pwned >> {repo / 'README.md'}\n"
        'case "$1" in clean|smudge) cat ;; esac\n'
    )


def _arm(repo_dir: str) -> str:
    """Shell that makes `repo_dir` a git repository whose config, hooks and attributes all
    run $PWD/evil.sh (the worktree path is the same inside the sandbox and out)."""
    cfg = f"git -C {repo_dir} config"
    sets = [
        f'{cfg} core.fsmonitor "$E fsmonitor"',
        f'{cfg} core.hooksPath "$PWD/{repo_dir}/.git/hooks"',
        f'{cfg} filter.evil.clean "$E clean"',
        f'{cfg} filter.evil.smudge "$E smudge"',
        f"{cfg} filter.evil.required true",
        f'{cfg} diff.external "$E extdiff"',
        f'{cfg} diff.evil.textconv "$E textconv"',
        f'{cfg} diff.evil.command "$E diffcmd"',
        f'{cfg} merge.evil.driver "$E merge"',
        f'{cfg} core.pager "$E pager"',
        f'{cfg} pager.diff "$E pagerdiff"',
        f'{cfg} core.editor "$E editor"',
        f'{cfg} core.sshCommand "$E ssh"',
        f'{cfg} credential.helper "!$E credential"',
        f'{cfg} gpg.program "$E gpg"',
        f"{cfg} commit.gpgSign true",
        f"{cfg} core.untrackedCache false",
        f'printf "[core]\\n\\tfsmonitor = $E included\\n" > /tmp/inc && '
        f'cp /tmp/inc {repo_dir}/.git/inc.cfg && {cfg} include.path "$PWD/{repo_dir}/.git/inc.cfg"',
        f"mkdir -p {repo_dir}/.git/hooks",
        f'for h in {HOOKS}; do printf "#!/bin/sh\\n$E hook-$h\\n" > {repo_dir}/.git/hooks/$h; '
        f"chmod +x {repo_dir}/.git/hooks/$h; done",
        f'printf "* filter=evil diff=evil merge=evil\\n" > {repo_dir}/.gitattributes',
    ]
    return f"git init -q {repo_dir} && " + " && ".join(sets)


def _hostile_script(tmp_path: Path, repo: Path, how: str) -> str:
    """The scripted model: write evil.sh, then replace the worktree's `.git` (how="dir",
    "gitfile") or plant nested repositories (how="nested")."""
    setup = 'chmod +x evil.sh && E="$PWD/evil.sh" && '
    if how == "dir":
        setup += "rm -f .git && " + _arm(".") + " && echo hi > new.txt"
    elif how == "gitfile":
        # .git becomes a gitfile naming a hostile repository elsewhere in the worktree
        setup += (
            "rm -f .git && mkdir evilrepo && " + _arm("evilrepo") + " && "
            'mv evilrepo/.git .evilgit && printf "gitdir: $PWD/.evilgit\\n" > .git && '
            "cp evilrepo/.gitattributes . && echo hi > new.txt"
        )
    else:  # nested repositories: a new one, and one populating the operator's gitlink
        setup += (
            _arm("sub") + " && echo s > sub/file && "
            "mkdir -p vendor/lib && " + _arm("vendor/lib") + " && echo v > vendor/lib/file && "
            'printf "[submodule \\"sub\\"]\\n\\tpath = sub\\n\\turl = ./sub\\n\\tignore = none\\n"'
            " >> .gitmodules && echo hi > new.txt"
        )
    second = (
        "echo more >> new.txt && echo more >> sub/file"
        if how == "nested"
        else "echo more >> new.txt"
    )
    turns = [
        {"tool_calls": [{"name": "write_file",
                         "input": {"path": "evil.sh", "content": _evil(tmp_path, repo)}}]},
        {"tool_calls": [{"name": "execute_bash", "input": {"command": setup}}]},
        {"tool_calls": [{"name": "execute_bash", "input": {"command": second}}]},
    ]  # fmt: skip
    return write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])


def _with_gitlink(repo: Path) -> None:
    """The operator's repo has a submodule (a gitlink plus .gitmodules), not populated."""
    other = repo.parent / "libsrc"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    (other / "f").write_text("lib\n")
    git(other, "add", "-A")
    git(other, "-c", "user.email=l@x", "-c", "user.name=l", "commit", "-qm", "lib")
    sha = git(other, "rev-parse", "HEAD").strip()
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{sha},vendor/lib")
    (repo / ".gitmodules").write_text(
        '[submodule "vendor/lib"]\n\tpath = vendor/lib\n\turl = ../libsrc\n\tignore = none\n'
    )
    git(repo, "add", ".gitmodules")
    git(repo, "commit", "-qm", "add a submodule")


def _run(repo: Path, model: str, approve: str, *extra: str, env: Any = None) -> Any:
    return cli(
        "run", "do the thing", "--workspace", str(repo), "--model", model, "--approve", approve,
        "--json", *extra, env={"ANTHROPIC_API_KEY": FAKE_KEY, **(env or {})},
    )  # fmt: skip


def _complete(result: Any) -> dict[str, Any]:
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["type"] == "complete", result.stdout[-2000:] + result.stderr
    return events[-1]


def _assert_nothing_ran(tmp_path: Path, repo: Path, readme: bytes) -> None:
    ran = (tmp_path / "marker").read_text() if (tmp_path / "marker").exists() else ""
    assert ran == "", f"model code ran outside the sandbox: {ran.split()}"
    assert not (tmp_path / "env.txt").exists()
    assert (repo / "README.md").read_bytes() == readme


@pytest.mark.parametrize("how", ["dir", "gitfile", "nested"])
@pytest.mark.parametrize("approve", ["deny", "auto"])
def test_model_git_config_never_runs_outside_the_sandbox(
    repo: Path, tmp_path: Path, how: str, approve: str
) -> None:
    if how == "nested":
        _with_gitlink(repo)
    readme = (repo / "README.md").read_bytes()
    model = _hostile_script(tmp_path, repo, how)
    extra = ["--no-apply"] if approve == "deny" else []
    result = _run(repo, model, approve, *extra)
    _assert_nothing_ran(tmp_path, repo, readme)
    assert "Traceback" not in result.stderr and "internal error" not in result.stdout
    complete = _complete(result)
    # The task ends sensibly: here it succeeds with the model's plain file among its changes.
    assert result.returncode == 0 and complete["success"] is True, result.stdout[-1500:]
    assert "new.txt" in complete["changes"]
    task_id = complete["task_id"]
    if approve == "auto":
        assert (repo / "new.txt").read_text() == "hi\nmore\n"
    # A nested repository is never recorded as a gitlink (which later git calls would
    # enter); the operator's own submodule stays as it was.
    tree = git(repo, "ls-tree", "-r", f"livhana/{task_id}").splitlines()
    links = {line.split("\t")[1] for line in tree if line.startswith("160000")}
    assert links == ({"vendor/lib"} if how == "nested" else set())
    # Rolling back (apply undone, or worktree discarded) runs none of it either, whatever
    # the model did to the worktree's .git.
    back = cli("rollback", task_id, env={"ANTHROPIC_API_KEY": FAKE_KEY})
    assert back.returncode == 0, back.stdout + back.stderr
    _assert_nothing_ran(tmp_path, repo, readme)
    assert not (repo / "new.txt").exists()
    if approve == "deny":  # never applied: its worktree and branch are gone
        assert git(repo, "branch", "--list", f"livhana/{task_id}") == ""
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
        assert not (tmp_path / "data" / "worktrees" / task_id).exists()


def test_discard_works_when_the_model_deleted_its_dotgit(repo: Path, tmp_path: Path) -> None:
    turns = [{"tool_calls": [{"name": "execute_bash",
                              "input": {"command": "rm -f .git && echo hi > new.txt"}}]}]  # fmt: skip
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    result = _run(repo, model, "deny", "--no-apply")
    complete = _complete(result)
    assert complete["success"] is True and complete["changes"] == ["new.txt"]
    back = cli("rollback", complete["task_id"])
    assert back.returncode == 0, back.stderr
    assert git(repo, "branch", "--list", "livhana/*") == ""
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not (repo / ".git" / "worktrees").exists()


def _tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_operator_git_variables_never_redirect_the_engine(repo: Path, tmp_path: Path) -> None:
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "app.py").write_text("decoy\n")
    git(decoy, "init", "-q", "-b", "main")
    git(decoy, "add", "-A")
    git(decoy, "-c", "user.email=d@x", "-c", "user.name=d", "commit", "-qm", "decoy")
    before = _tree_digest(decoy)
    env = {
        "GIT_DIR": str(decoy / ".git"),
        "GIT_WORK_TREE": str(decoy),
        "GIT_INDEX_FILE": str(decoy / ".git" / "index"),
        "GIT_OBJECT_DIRECTORY": str(decoy / ".git" / "objects"),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.fsmonitor",
        "GIT_CONFIG_VALUE_0": f"sh -c 'echo fsm >> {tmp_path / 'marker'}'",
    }
    turns = [{"tool_calls": [{"name": "write_file",
                              "input": {"path": "app.py", "content": "real = 1\n"}}]}]  # fmt: skip
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    result = _run(repo, model, "auto", env=env)
    complete = _complete(result)
    assert result.returncode == 0 and complete["success"], result.stdout[-1500:] + result.stderr
    assert _tree_digest(decoy) == before  # byte for byte
    assert (repo / "app.py").read_text() == "real = 1\n"
    assert git(repo, "log", "-1", "--format=%s").startswith("livhana:")
    assert not (tmp_path / "marker").exists()


def test_every_engine_commit_carries_the_one_identity(repo: Path, tmp_path: Path) -> None:
    turns = [{"tool_calls": [{"name": "write_file",
                              "input": {"path": "app.py", "content": "x = 1\n"}}]}]  # fmt: skip
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    result = _run(repo, model, "auto")
    complete = _complete(result)
    assert result.returncode == 0, result.stdout[-1500:]
    task_id = complete["task_id"]
    who = WHO
    fmt = "--format=%an <%ae>|%cn <%ce>"
    task_commit = git(repo, "log", "-1", fmt, f"livhana/{task_id}").strip()
    assert task_commit == f"{who}|{who}"
    applied = git(repo, "log", "-1", fmt, "HEAD").strip()
    assert applied == f"{who}|Operator <op@example.com>"  # the operator commits what lands
    shadow = tmp_path / "data" / "shadow" / task_id
    checkpoints = subprocess.run(
        ["git", f"--git-dir={shadow}", "log", fmt, "checkpoints"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(checkpoints) >= 2 and set(checkpoints) == {f"{who}|{who}"}


def test_recovery_after_a_crash_runs_nothing_of_the_model(repo: Path, tmp_path: Path) -> None:
    # The engine dies while the model's hostile .git is in place; the next start recovers
    # the task (is its worktree changed? drop it if not) with git, and must run none of it.
    readme = (repo / "README.md").read_bytes()
    model = _hostile_script(tmp_path, repo, "dir")
    turns = json.loads((tmp_path / "s.json").read_text())["scripts"][0]["turns"]
    turns[2] = {"tool_calls": [{"name": "execute_bash", "input": {"command": "sleep 60"}}]}
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    proc = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "run", "x", "--workspace", str(repo), "--model", model,
         "--approve", "deny", "--no-apply", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
        env={**os.environ, "ANTHROPIC_API_KEY": FAKE_KEY},
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        for line in proc.stdout:  # until the third step (the sleep) has started
            event = json.loads(line)
            if event["type"] == "step" and event.get("step") == 3:
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    task_id = event["task_id"]
    listed = cli("history", "--json", env={"ANTHROPIC_API_KEY": FAKE_KEY})
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["state"] == "interrupted"
    _assert_nothing_ran(tmp_path, repo, readme)
    back = cli("rollback", task_id)
    assert back.returncode == 0, back.stdout + back.stderr
    _assert_nothing_ran(tmp_path, repo, readme)
    assert git(repo, "branch", "--list", f"livhana/{task_id}") == ""


def test_a_task_worktree_is_refused_as_a_workspace(repo: Path, tmp_path: Path) -> None:
    # A careless operator points a task at a worktree the model wrote: the engine must not
    # even look for a repository there (git would read the model's .git).
    readme = (repo / "README.md").read_bytes()
    first = _complete(_run(repo, _hostile_script(tmp_path, repo, "dir"), "deny", "--no-apply"))
    worktree = tmp_path / "data" / "worktrees" / first["task_id"]
    assert (worktree / ".git").is_dir()  # the model's repository
    plain = write_script(tmp_path / "plain.json", [{"match": ".", "turns": []}])
    result = _run(worktree, plain, "deny", "--no-apply")
    assert result.returncode == 2 and "task's worktree" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    _assert_nothing_ran(tmp_path, repo, readme)


def test_the_model_dotgit_never_widens_its_own_sandbox(repo: Path, tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"  # under /tmp: the sandbox's private /tmp hides it
    hidden.mkdir()
    (hidden / "secret.txt").write_text("TOP SECRET\n")
    point = f"rm -f .git && echo 'gitdir: {hidden}' > .git"
    turns = [
        {"tool_calls": [{"name": "execute_bash", "input": {"command": point}}]},
        {"tool_calls": [{"name": "execute_bash",
                         "input": {"command": f"cat {hidden}/secret.txt"}}]},
    ]  # fmt: skip
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    result = _run(repo, model, "deny", "--no-apply")
    assert "TOP SECRET" not in result.stdout
