"""The one way the engine runs git: worktrees, task commits, checkpoints, apply, rollback.

Git runs here unsandboxed, as the operator, on trees the model wrote. So every call:
- gets an environment we build (`git_env`), never the operator's: no `GIT_*` of theirs can
  redirect it (GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE, GIT_OBJECT_DIRECTORY, GIT_CONFIG_*,
  GIT_EXEC_PATH...), no secret rides along, and PATH keeps only absolute entries (a `.` in
  it would find a `git` the model left in the worktree);
- runs with `SAFE_OPTIONS`: no hooks, fsmonitor, pager, editor, askpass, credential helper,
  transport (so no ssh command), signing, auto-gc or submodule recursion;
- on a task worktree, names its git dir explicitly (`Git(git_dir=..., work_tree=...)`, the
  admin dir the engine found, see agent/workspace.py): the worktree's `.git` is the model's
  to replace, and git never reads it;
- never enters a repository inside the tree (`stage_all`, `--ignore-submodules=dirty`): git
  runs `git status` in a gitlink's repository, with that repository's config (fsmonitor,
  filters), when it compares a work tree with an index holding a gitlink.

What remains, by design: attribute files in a tree (`.gitattributes`) are the model's, and
select filter/diff/merge drivers by name. Drivers are only ever defined by config the model
cannot write (the operator's global/system config and the operator repository's own), so a
model can make the engine run only a driver the operator installed (git-lfs's clean filter
on a staged file, as the operator's own `git add` would). Diffs pass `--no-ext-diff
--no-textconv`, so diff drivers never run. The shadow checkpoint repos read no global or
system config at all (`isolated`), so no driver exists there.

One error type (GitError, a CockpitError with one line naming the command), one identity
(IDENTITY: author of every commit the engine makes; committer too, except on an apply in a
repository whose owner has their own identity, see agent/applyback.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CockpitError

IDENTITY = ("Liv Hana", "livhana@localhost")

# `-c` beats every config file, and git hands these to any git it starts itself
# (GIT_CONFIG_PARAMETERS), so they hold for child gits too.
SAFE_OPTIONS = [
    "--no-pager",
    *("-c", "core.hooksPath=/dev/null"),
    *("-c", "core.fsmonitor=false"),
    *("-c", "core.pager=cat"),
    *("-c", "core.editor=true"),
    *("-c", "sequence.editor=true"),
    *("-c", "core.askPass="),
    *("-c", "credential.helper="),
    *("-c", "core.sshCommand=false"),
    *("-c", "protocol.allow=never"),
    *("-c", "commit.gpgSign=false"),
    *("-c", "tag.gpgSign=false"),
    *("-c", "log.showSignature=false"),
    *("-c", "gc.auto=0"),
    *("-c", "maintenance.auto=false"),
    *("-c", "submodule.recurse=false"),
    *("-c", "diff.ignoreSubmodules=dirty"),
    *("-c", "status.submoduleSummary=false"),
    *("-c", "advice.addEmbeddedRepo=false"),
]

# What git needs of the operator's environment; everything else (secrets first) stays out.
_KEEP_ENV = ("HOME", "XDG_CONFIG_HOME", "TMPDIR", "TZ")


class GitError(CockpitError):
    """A git command failed; the message is one line naming the command."""


def git_env(
    *,
    author: bool = True,
    committer: bool = True,
    isolated: bool = False,
    index_file: Path | None = None,
) -> dict[str, str]:
    """The environment of every engine git call (see the module doc). `isolated`: read no
    global or system config (the shadow checkpoint repos, which need none of the operator's)."""
    env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
    env["PATH"] = safe_path()
    env.update(
        LC_ALL="C",  # messages we parse ("fatal:"...) in one language
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",  # a status never rewrites the operator's index under them
        GIT_EDITOR="true",
        GIT_PAGER="cat",
    )
    if isolated:
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    if index_file is not None:
        env["GIT_INDEX_FILE"] = str(index_file)
    if author:
        env.update(GIT_AUTHOR_NAME=IDENTITY[0], GIT_AUTHOR_EMAIL=IDENTITY[1])
    if committer:
        env.update(GIT_COMMITTER_NAME=IDENTITY[0], GIT_COMMITTER_EMAIL=IDENTITY[1])
    return env


def safe_path() -> str:
    """The operator's PATH without relative entries ("" and "." mean the current directory,
    which for us is often a tree the model wrote)."""
    parts = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return os.pathsep.join(p for p in parts if os.path.isabs(p)) or "/usr/bin:/bin"


def _git_exe() -> str:
    return shutil.which("git", path=safe_path()) or "git"


async def run(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    check: bool = True,
) -> tuple[int, bytes, bytes]:
    """`git SAFE_OPTIONS *args`: (returncode, stdout, stderr); GitError if check and it failed."""
    try:
        proc = await asyncio.create_subprocess_exec(
            _git_exe(),
            *SAFE_OPTIONS,
            *args,
            cwd=None if cwd is None else str(cwd),
            env=git_env() if env is None else env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:  # git missing, or `cwd` gone (a worktree the operator deleted)
        if check:
            raise GitError(f"git {command_name(args)} could not start: {exc}") from None
        return 127, b"", str(exc).encode()
    out, err = await proc.communicate(stdin)
    code = proc.returncode or 0
    if check and code != 0:
        raise GitError(f"git {command_name(args)} failed: {first_line(err or out)}")
    return code, out, err


def first_line(raw: bytes) -> str:
    lines = [ln.strip() for ln in raw.decode(errors="replace").splitlines() if ln.strip()]
    # git puts "error:"/"fatal:" lines first and hints after; prefer the error.
    for ln in lines:
        if ln.startswith(("fatal:", "error:")):
            return ln
    return lines[0] if lines else "no output"


def command_name(args: Sequence[str]) -> str:
    words = [a for a in args if not a.startswith("-") and "=" not in a]
    return words[0] if words else "?"


@dataclass
class Git:
    """Git bound to one place: `cwd` alone finds the repository the usual way (only for the
    operator's own checkout); `git_dir` (+ `work_tree`) names it, for anything the model
    could have written."""

    cwd: Path
    git_dir: Path | None = None
    work_tree: Path | None = None
    env: dict[str, str] = field(default_factory=git_env)

    def _argv(self, args: Sequence[str]) -> list[str]:
        where = [f"--git-dir={self.git_dir}"] if self.git_dir is not None else []
        if self.work_tree is not None:
            where.append(f"--work-tree={self.work_tree}")
        return [*where, *args]

    async def run(
        self, *args: str, stdin: bytes | None = None, check: bool = True
    ) -> tuple[int, bytes, bytes]:
        return await run(self._argv(args), cwd=self.cwd, env=self.env, stdin=stdin, check=check)

    async def out(self, *args: str, stdin: bytes | None = None, check: bool = True) -> bytes:
        return (await self.run(*args, stdin=stdin, check=check))[1]

    async def text(self, *args: str, stdin: bytes | None = None, check: bool = True) -> str:
        # "replace": text goes to events and the store; callers needing exact path bytes
        # use `out` and decode them themselves.
        return (await self.out(*args, stdin=stdin, check=check)).decode(errors="replace")

    async def nested_repos(self) -> list[bytes]:
        """Paths (bytes, as git lists them) of the repositories inside the work tree: the
        index's gitlinks and untracked directories that hold their own `.git`."""
        staged = await self.out("ls-files", "-z", "--stage")
        links = [e.split(b"\t", 1)[1] for e in staged.split(b"\0") if e.startswith(b"160000 ")]
        # Without --directory, ls-files names a nested repository as "dir/", and nothing
        # else with a trailing slash.
        others = await self.out("ls-files", "-z", "--others", "--exclude-standard")
        return links + [e.rstrip(b"/") for e in others.split(b"\0") if e.endswith(b"/")]

    async def stage_all(self, *flags: str) -> None:
        """`git add -A` of the whole work tree, except repositories inside it: a new one is
        never recorded (it would become a gitlink, and git enters gitlinks to compare them),
        and an existing gitlink is never compared with its directory."""
        spec = b"\0".join([b".", *(b":(exclude,literal)" + p for p in await self.nested_repos())])
        await self.run(
            "add", "-A", *flags, "--pathspec-from-file=-", "--pathspec-file-nul", stdin=spec
        )


async def git(*args: str, cwd: Path, check: bool = True) -> str:
    """Text output of git in the operator's checkout `cwd` (found the usual way)."""
    return await Git(cwd).text(*args, check=check)


async def is_git_repo(path: Path) -> bool:
    code, out, err = await run(["rev-parse", "--is-inside-work-tree"], cwd=path, check=False)
    if b"dubious ownership" in err:
        # Treating it as a plain folder would silently lose git's safety net: say so.
        raise GitError(
            f"git refuses {path} (owned by another user); if you trust it, run: "
            f"git config --global --add safe.directory {path}"
        )
    return code == 0 and out.strip() == b"true"
