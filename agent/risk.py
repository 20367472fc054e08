"""How risky an approval request is: low, medium or high, shown on the approval card.

A command is rated by its riskiest part: `make && rm -rf build && git clean -fdx` is as
risky as its worst piece, not as its first. Destructive commands (recursive deletes, git's
history and worktree wipes, raw disk writes, recursive permission changes) rate high."""

from __future__ import annotations

import re
from typing import Any

from .policy import split_command

LEVELS = ("low", "medium", "high")
BY_KIND = {
    "deploy": "high",
    "db_write": "high",
    "db": "high",
    "command": "medium",
    "apply": "medium",
    "stall": "low",
}
_W = r"(?:^|[\s/;&|(])"  # a command word starts here (not inside a file name)
DESTRUCTIVE = tuple(re.compile(rx) for rx in (
    _W + r"rm\s+(?:-\S+\s+)*-[a-zA-Z]*[rRfF]",  # rm -r, -rf, -f
    _W + r"rm\s+(?:.*\s)?--(?:recursive|force)\b",
    r"\bgit\s+clean\s+(?:\S+\s+)*-[a-zA-Z]*[fdxX]",
    r"\bgit\s+reset\s+(?:\S+\s+)*--hard\b",
    r"\bgit\s+(?:checkout|restore)\s+(?:\S+\s+)*(?:--\s+)?\.(?:\s|$)",
    r"\bgit\s+push\s+(?:\S+\s+)*(?:-f\b|--force)",
    r"\bgit\s+(?:branch\s+-D|stash\s+(?:drop|clear)|reflog\s+expire|gc\s+--prune)\b",
    _W + r"dd\s+.*\bof=",
    _W + r"(?:mkfs(?:\.\w+)?|shred|wipefs|fdisk|parted)\b",
    _W + r"(?:chmod|chown|chgrp)\s+(?:\S+\s+)*-[a-zA-Z]*R",
    _W + r"find\s+.*\s-delete\b",
    _W + r"truncate\s+",
    r">\s*/dev/(?:sd|nvme|hd|vd)",
))  # fmt: skip


def command_risk(command: str) -> str:
    """The riskiest part of a shell command line ("high" if any part is destructive)."""
    parts = [command, *split_command(command)]
    if any(rx.search(p) for p in parts for rx in DESTRUCTIVE):
        return "high"
    return BY_KIND["command"]


def rate(kind: str, detail: dict[str, Any]) -> str:
    """The risk of a request of `kind` whose detail is `detail` (a command is read from
    its tool input, or from the detail itself for an unsandboxed run's question)."""
    if kind == "command":
        given = detail.get("input") if isinstance(detail.get("input"), dict) else detail
        command = given.get("command")
        if isinstance(command, str) and command:
            return command_risk(command)
    return BY_KIND.get(kind, "medium")
