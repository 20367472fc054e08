"""Checkpoints of a directory in a shadow git dir that lives outside it.

The shadow repo never touches the user's history, index or config: every command runs as
`git --git-dir=<shadow> --work-tree=<dir>` with its own index file, a clean environment
(no GIT_* leaking in from a hook, no global/system config, no hooks, no signing).

    cp = Checkpoints(work_tree, shadow_dir)
    c1 = await cp.snapshot("step 1")      # commit id, or None if nothing changed since the last
    await cp.restore(c1)                  # tree byte-identical to c1 (ignored files are kept)
    await cp.restore(c1, paths=["a.py"])  # only these paths (deleted if absent in c1)
    await cp.list()                       # [{"commit", "label", "ts"}], oldest first
    await cp.current()                    # checkpoint of the last snapshot/restore
    await cp.read(c1, "a.py")             # the file's bytes in c1, None if absent
    await cp.diff(c1), await cp.changed_files(c1, c2)   # b=None means the live tree

Everything in the tree is captured (untracked files, edits made by shell commands) except
what the tree's own .gitignore files ignore, and `.git` (a dir, or a git worktree's file).
Restoring does not drop later checkpoints: any step can be returned to. The index is kept
between calls so `git add -A` only re-hashes files whose stat data changed (fast on big trees).
Repositories nested inside the tree (a `sub/.git`) are left out, never entered: their config
is whoever made them (see gitcmd.Git.stage_all). The tree's .gitattributes are inert here.
Secrets: checkpoints are restore points, so they hold the tree's files byte for byte (a .env
included, as the worktree itself does); they live under the data dir, never in an event, the
store or a log, which are what redaction guards.
Failures raise GitError (a CockpitError) with one line naming the git command.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from pathlib import Path

from .gitcmd import Git, GitError, git_env, run

__all__ = ["BASE_REF", "BRANCH", "Checkpoints", "GitError"]

BRANCH = "refs/heads/checkpoints"
# Tree of the last snapshot or restore: "nothing changed" is judged against it, not the tip,
# so a snapshot right after restoring to an old step is a no-op.
BASE_REF = "refs/livhana/base"
STALE_LOCK_S = 30.0
_CONFIG = """[core]
\trepositoryformatversion = 0
\tbare = false
\tfilemode = true
\tsymlinks = true
\tautocrlf = false
\tsafecrlf = false
\tuntrackedCache = true
\tfsmonitor = false
\tlogAllRefUpdates = false
\tquotePath = false
[gc]
\tauto = 0
[maintenance]
\tauto = false
[commit]
\tgpgSign = false
[advice]
\taddEmbeddedRepo = false
"""
# Highest-precedence attributes: the tree's own .gitattributes (the model's, in a task
# tree) can neither convert bytes (a restore must give back exactly what was snapshotted)
# nor name a driver (none is configured here anyway: the shadow reads no global config).
_ATTRIBUTES = "* !text !eol !filter !diff !merge !ident !working-tree-encoding\n"


class Checkpoints:
    def __init__(self, work_tree: Path, shadow_dir: Path) -> None:
        self.work_tree = Path(work_tree).resolve()
        self.shadow_dir = Path(shadow_dir).resolve()
        env = git_env(isolated=True, index_file=self.shadow_dir / "index")
        self._g = Git(self.work_tree, git_dir=self.shadow_dir, work_tree=self.work_tree, env=env)
        self._lock = asyncio.Lock()
        self._ready = False

    async def _git(self, *args: str, stdin: bytes | None = None, check: bool = True) -> bytes:
        return await self._g.out(*args, stdin=stdin, check=check)

    async def _ensure(self) -> None:
        if self._ready:
            return
        if not self.work_tree.is_dir():
            raise GitError(f"checkpoints: {self.work_tree} is not a directory")
        if not (self.shadow_dir / "HEAD").exists():
            self.shadow_dir.mkdir(parents=True, exist_ok=True)
            await run(
                ["init", "-q", "--bare", "--template=", str(self.shadow_dir)], env=self._g.env
            )
            (self.shadow_dir / "config").write_text(_CONFIG)
            await self._git("symbolic-ref", "HEAD", BRANCH)
            excludes = ["/.git", ".git"]
            if self.shadow_dir.is_relative_to(self.work_tree):  # never snapshot ourselves
                excludes.append("/" + self.shadow_dir.relative_to(self.work_tree).as_posix())
            info = self.shadow_dir / "info"
            info.mkdir(exist_ok=True)
            (info / "exclude").write_text("\n".join(excludes) + "\n")
        attributes = self.shadow_dir / "info" / "attributes"
        if not attributes.exists():  # also for shadow dirs made before it existed
            attributes.parent.mkdir(exist_ok=True)
            attributes.write_text(_ATTRIBUTES)
        # A process killed mid-snapshot leaves index.lock behind and every later call would
        # fail; only we use this shadow dir, so an old lock is a dead one.
        lock = self.shadow_dir / "index.lock"
        with contextlib.suppress(OSError):
            if time.time() - lock.stat().st_mtime > STALE_LOCK_S:
                lock.unlink()
        self._ready = True

    async def _rev(self, ref: str) -> str | None:
        out = await self._git("rev-parse", "-q", "--verify", ref, check=False)
        return out.decode().strip() or None

    async def _add(self) -> None:
        """Bring the shadow index up to date with the work tree (only changed files are hashed).
        Repositories inside the tree are left out: see Git.stage_all."""
        await self._g.stage_all("--ignore-errors")

    async def _refs(self) -> tuple[str | None, str | None]:
        """(tip commit, tree of the last snapshot/restore) in one git call."""
        fmt = "%(refname) %(objectname) %(tree)"
        out = await self._git("for-each-ref", f"--format={fmt}", BRANCH, BASE_REF)
        found = {ln.split()[0]: ln.split()[1:] for ln in out.decode().splitlines() if ln}
        tip = found.get(BRANCH, [None])[0]
        base = found.get(BASE_REF, [None, None])[1]
        return tip, base

    async def snapshot(self, label: str) -> str | None:
        async with self._lock:
            await self._ensure()
            await self._add()
            tree = (await self._git("write-tree")).decode().strip()
            tip, base = await self._refs()
            if base == tree:
                return None
            parent = ["-p", tip] if tip else []
            stamp = f"{int(time.time())} +0000"
            self._g.env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
            msg = (label or "checkpoint").encode()
            commit = (await self._git("commit-tree", tree, *parent, stdin=msg)).decode().strip()
            refs = f"update {BRANCH} {commit}\nupdate {BASE_REF} {commit}\n"
            await self._git("update-ref", "--stdin", stdin=refs.encode())
            return commit

    async def restore(self, commit: str, paths: Iterable[str] | None = None) -> None:
        """Make the work tree match `commit` (or just `paths`), keeping ignored files."""
        async with self._lock:
            await self._ensure()
            target = await self._rev(f"{commit}^{{commit}}")
            if target is None:
                raise GitError(f"checkpoints: unknown checkpoint {commit}")
            wanted = [] if paths is None else [str(p) for p in paths]
            if paths is not None and not wanted:
                return
            # With the index describing the live tree, index-vs-target lists exactly the
            # files to rewrite, including those created after the checkpoint (to delete).
            # Ignored files are never in the index, so they stay. Touching only these paths
            # is much faster than read-tree -u over the whole tree.
            await self._add()
            lit = "--literal-pathspecs"
            out = await self._git(
                lit, "diff-index", "--cached", "--no-renames", "--name-only", "-z", target,
                "--", *wanted,
            )  # fmt: skip
            if out.strip(b"\0"):
                await self._git(
                    lit, "restore", f"--source={target}", "--staged", "--worktree",
                    "--pathspec-from-file=-", "--pathspec-file-nul", stdin=out.rstrip(b"\0"),
                )  # fmt: skip
            if paths is None:
                await self._git("update-ref", BASE_REF, target)

    async def read(self, commit: str, path: str) -> bytes | None:
        """The bytes of `path` in checkpoint `commit`, or None if it had no such file."""
        await self._ensure()
        code, out, _ = await self._g.run("cat-file", "blob", f"{commit}:{path}", check=False)
        return out if code == 0 else None

    async def current(self) -> str | None:
        """The checkpoint the tree matched at the last snapshot or restore (None before any)."""
        await self._ensure()
        return await self._rev(f"{BASE_REF}^{{commit}}")

    async def list(self) -> list[dict[str, object]]:
        await self._ensure()
        if await self._rev(BRANCH) is None:
            return []
        out = await self._git("log", "--reverse", "--format=%H%x00%ct%x00%s%x1e", BRANCH)
        items = []
        for rec in out.decode(errors="replace").split("\x1e"):
            if rec.strip():
                commit, ts, label = rec.strip().split("\0", 2)
                items.append({"commit": commit, "label": label, "ts": float(ts)})
        return items

    async def _range(self, a: str, b: str | None) -> list[str]:
        if b is not None:
            return [a, b]
        await self._add()  # compare against the live tree, untracked files included
        return ["--cached", a]

    async def diff(self, a: str, b: str | None = None) -> str:
        async with self._lock:
            await self._ensure()
            rng = await self._range(a, b)
            out = await self._git(
                "diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", *rng
            )
            return out.decode(errors="replace")

    async def changed_files(self, a: str, b: str | None = None) -> list[str]:
        async with self._lock:
            await self._ensure()
            rng = await self._range(a, b)
            out = await self._git("diff", "--name-only", "-z", "--no-renames", *rng)
            return [p for p in out.decode(errors="surrogateescape").split("\0") if p]
