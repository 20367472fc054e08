"""Which folders an API caller may point the agent at.

A token is operator-level trust, yet it travels further than a terminal: a leaked one must
not be able to aim the agent at `/`, a home folder or the system (a folder that is not a
git repository is copied whole for the task). So the API refuses a filesystem root, a home
folder itself, system trees and the data dir; and with `[api] workspaces` set, anything
outside those folders. The server's own default workspace is always allowed.
"""

from __future__ import annotations

from pathlib import Path

from .problems import invalid

# Never a project: the folder itself (its subfolders may be).
_NOT_ITSELF = ("/", "/home", "/tmp", "/var", "/srv", "/opt", "/mnt", "/media", "/Users")
# Never a project, nor anything inside.
_NOT_INSIDE = ("/proc", "/sys", "/dev", "/etc", "/boot", "/usr", "/bin", "/sbin", "/lib",
               "/lib32", "/lib64", "/run", "/System", "/Library")  # fmt: skip


def check_workspace(path: Path, default: str, allowed: list[str], data_dir: Path) -> None:
    """Raise a 422 naming `workspace` unless the API may run tasks in `path` (resolved)."""
    if default and path == Path(default):
        return
    shown = str(path)[:200]
    if str(path) in _NOT_ITSELF or path == Path.home() or path.parent == Path("/home"):
        raise invalid("workspace", f"{shown} is not a project folder (a root or home folder)")
    if any(path.is_relative_to(p) for p in _NOT_INSIDE):
        raise invalid("workspace", f"{shown} is a system folder, not a project")
    if path.is_relative_to(data_dir.resolve()):
        raise invalid("workspace", f"{shown} is inside the cockpit's data dir")
    roots = [Path(p).expanduser().resolve() for p in allowed]
    if roots and not any(path.is_relative_to(r) for r in roots):
        raise invalid(
            "workspace",
            f"{shown} is outside the folders this API may use ([api] workspaces: "
            f"{', '.join(str(r) for r in roots)[:300]})",
        )
