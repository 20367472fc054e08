"""Approval policy: which tool calls run (allow), wait for the operator (ask) or never run (deny).

A TOML file, every key optional:

    mode = "normal"            # normal | strict (everything but reads asks) | yolo (all allowed
                               #   except deny rules)
    [tools]
    deploy_code = "allow"      # any of the ten tools, or "apply" (apply a task to the workspace)
    [[commands]]               # execute_bash commands; checked in order, first match wins
    pattern = "^rm -rf"        # a regex, searched in the whole command and in each part of
    decision = "deny"          #   it (split on ; && || | newlines and $( ) so chains can't hide)
    description = "no recursive deletes"

    policy = Policy.load(path)                       # missing file -> defaults; broken -> ConfigError
    decision, rule = policy.decide("execute_bash", {"command": "curl x"}, sandboxed=True)
    policy.set("deploy_code", "allow"); policy.save()

Precedence: deny rules (yours, built-in, [tools] = "deny") always win; yolo allows the rest;
then your command rules, built-in command rules (network use asks), no sandbox (commands and
tests ask), your [tools] entry, the defaults; strict then turns any "allow" of a non-read
tool into "ask". `rule` names what decided, for the approval card and the audit log.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DECISIONS = ("allow", "ask", "deny")
MODES = ("normal", "strict", "yolo")
READ_TOOLS = ("read_file", "search_codebase", "analyze_logs", "update_plan")
DEFAULTS: dict[str, tuple[str, str]] = {
    "read_file": ("allow", "reads are allowed"),
    "search_codebase": ("allow", "reads are allowed"),
    "analyze_logs": ("allow", "reads are allowed"),
    "update_plan": ("allow", "planning is allowed"),
    "generate_reports": ("allow", "reports are written to the data dir's reports folder"),
    "run_tests": ("allow", "tests run sandboxed in the worktree"),
    "write_file": ("allow", "writes are confined to the task's worktree"),
    "execute_bash": ("allow", "sandboxed commands are allowed"),
    "deploy_code": ("ask", "deploys need approval"),
    "query_database": ("allow", "queries are read-only; writes are asked inside the tool"),
    "apply": ("ask", "applying a task to the workspace needs approval"),
}
TOOLS = tuple(DEFAULTS)
# Who answers an "ask" (agent/approvals.py applies the task's approval mode).
WHO_ANSWERS = ("An \"ask\" waits for you when the task's approval mode is ask; under auto "
               "a rule approves it, under deny a rule refuses it.")
UNSANDBOXED_ASK = ("execute_bash", "run_tests")  # they run commands: unconfined without bwrap
_CMD = r"(?:^|[\s/;&|(])(?:%s)(?=\s|$)"  # a command word, not a substring of a file name
_NET = (
    _CMD % "curl|wget|ssh|scp|sftp|rsync|telnet|ftp|nc|ncat|socat|aria2c|npx",
    r"\b(?:pip3?|uv\s+pip|pipx|poetry|pdm)\s+(?:install|add|download)\b",
    r"\bpython3?\s+-m\s+pip\s+(?:install|download)\b",
    r"\b(?:npm|pnpm|yarn|bun)\s+(?:install|i|ci|add|publish|update|upgrade|dlx)\b",
    r"\bgit\s+(?:push|pull|fetch|clone|ls-remote|submodule\s+update)\b",
    r"\b(?:apt|apt-get|dnf|yum|apk|brew)\s+(?:install|update|upgrade)\b",
    r"\b(?:cargo\s+(?:install|fetch|publish)|go\s+(?:get|install|mod\s+download)|gem\s+install)\b",
    r"\bdocker\s+(?:pull|push|login)\b",
)
# The rule that asks about network use: an operator's yes to it runs that one command with
# network (agent/tools/execute_bash.py); a rule's yes (approve=auto) does not.
NETWORK_RULE = "built-in: looks like network use"
BUILTIN_COMMANDS: list[tuple[str, str, str]] = [
    (r"\brm\s+-[a-zA-Z]*[rR][a-zA-Z]*\s+(?:-\S+\s+)*(?:/|/\*|~|~/|\$HOME)(?:\s|$)", "deny",
     "built-in: recursive delete of / or home"),
    (r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}", "deny", "built-in: fork bomb"),
    (r"\bmkfs(?:\.\w+)?\b|\bdd\b.*\bof=/dev/", "deny", "built-in: writes a raw device"),
    *((rx, "ask", NETWORK_RULE) for rx in _NET),
]  # fmt: skip
_SPLIT = re.compile(r";|&&|\|\||\||\n|\$\(|`|\)")


def split_command(command: str) -> list[str]:
    """The parts of a command line (split on ; && || | newlines and $( ) ` ), so a chain
    cannot hide a part behind a harmless first one."""
    return [p.strip() for p in _SPLIT.split(command) if p.strip()]


@dataclass
class CommandRule:
    pattern: str
    decision: str
    description: str = ""
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.regex = re.compile(self.pattern)

    def matches(self, command: str, parts: list[str]) -> bool:
        return any(self.regex.search(p) for p in [command, *parts])


@dataclass
class Policy:
    mode: str = "normal"
    tools: dict[str, str] = field(default_factory=dict)
    commands: list[CommandRule] = field(default_factory=list)
    path: Path | None = None
    _builtin: list[CommandRule] = field(
        default_factory=lambda: [CommandRule(*r) for r in BUILTIN_COMMANDS], repr=False
    )

    @classmethod
    def load(cls, path: Path | str) -> Policy:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path=path)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"policy {path}: {_one_line(exc)}") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> Policy:
        where = f"policy {path}" if path else "policy"
        unknown = set(data) - {"mode", "tools", "commands"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        policy = cls(path=path)
        policy.mode = _choice(data.get("mode", "normal"), MODES, f"{where}: mode")
        tools = data.get("tools", {})
        if not isinstance(tools, dict):
            raise ConfigError(f"{where}: [tools] must be a table")
        for tool, decision in tools.items():
            policy.set(tool, decision, where=where)
        commands = data.get("commands", [])
        if not isinstance(commands, list):
            raise ConfigError(f"{where}: commands must be an array of tables ([[commands]])")
        for i, entry in enumerate(commands, 1):
            if not isinstance(entry, dict) or set(entry) - {"pattern", "decision", "description"}:
                raise ConfigError(f"{where}: commands #{i} takes pattern, decision, description")
            policy.add_command(entry.get("pattern"), entry.get("decision"),
                               entry.get("description", ""), where=f"{where}: commands #{i}")  # fmt: skip
        return policy

    def set(self, tool: str, decision: str, *, where: str = "policy") -> None:
        if tool not in TOOLS:
            raise ConfigError(f"{where}: unknown tool {tool!r} (known: {', '.join(TOOLS)})")
        self.tools[tool] = _choice(decision, DECISIONS, f"{where}: tools.{tool}")

    def add_command(
        self, pattern: Any, decision: Any, description: str = "", *, where: str = "policy"
    ) -> None:
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{where}: pattern must be a non-empty string")
        decision = _choice(decision, DECISIONS, f"{where}: decision")
        try:
            self.commands.append(CommandRule(pattern, decision, str(description)))
        except re.error as exc:
            raise ConfigError(f"{where}: bad pattern {pattern!r}: {exc}") from None

    def decide(self, tool_name: str, args: dict[str, Any], *, sandboxed: bool) -> tuple[str, str]:
        args = args or {}
        command = str(args.get("command") or "") if tool_name == "execute_bash" else ""
        parts = split_command(command) if command else []
        mine = next((r for r in self.commands if r.matches(command, parts)), None)
        builtin = next((r for r in self._builtin if r.matches(command, parts)), None)
        for rule in (mine, builtin):
            if rule and rule.decision == "deny":
                return "deny", _describe(rule, self.commands)
        if self.tools.get(tool_name) == "deny":
            return "deny", f"tools.{tool_name} = deny (policy file)"
        if self.mode == "yolo":
            return "allow", "mode yolo: everything not denied is allowed"
        decision, rule = self._normal(tool_name, sandboxed, mine, builtin)
        if self.mode == "strict" and decision == "allow" and tool_name not in READ_TOOLS:
            return "ask", f"mode strict: everything but reads asks (was: {rule})"
        return decision, rule

    def _normal(
        self, tool: str, sandboxed: bool, mine: CommandRule | None, builtin: CommandRule | None
    ) -> tuple[str, str]:
        # Most specific first: your command rules, built-in command rules, the missing
        # sandbox (a [tools] "allow" does not silence these; a [[commands]] rule or yolo does).
        if mine is not None:
            return mine.decision, _describe(mine, self.commands)
        if builtin is not None:
            return builtin.decision, builtin.description
        if tool in UNSANDBOXED_ASK and not sandboxed:
            return "ask", "no sandbox (bubblewrap missing): every command asks"
        if tool in self.tools:
            return self.tools[tool], f"tools.{tool} = {self.tools[tool]} (policy file)"
        if tool in DEFAULTS:
            decision, why = DEFAULTS[tool]
            return decision, f"default: {why}"
        return "ask", f"default: unknown tool {tool!r} asks"

    def gates(self, tool: str, *, sandboxed: bool) -> list[str]:
        """What still makes a call of `tool` ask or be refused whatever its own decision
        says (Capabilities: `execute_bash allow`, yet `rm -rf` waits for the operator):
        command rules, yours then built-in, in the order `decide` checks them, and the
        missing sandbox. Each line: "<decision>: <rule>"."""
        if self.mode == "strict" and tool not in READ_TOOLS:
            return [f"ask: mode strict: every call of {tool} asks"]
        out: list[str] = []
        if tool == "execute_bash":
            rules = [*self.commands, *self._builtin]
            for rule in rules:
                if rule.decision == "allow" or (self.mode == "yolo" and rule.decision == "ask"):
                    continue  # yolo silences asks, never denies
                line = f"{rule.decision}: {_describe(rule, self.commands)}"
                if line not in out:  # the built-in network rule has several patterns
                    out.append(line)
        if tool in UNSANDBOXED_ASK and not sandboxed and self.mode != "yolo":
            out.append("ask: no sandbox (bubblewrap missing): every command asks")
        return out

    def table(self, *, sandboxed: bool) -> list[dict[str, str]]:
        """The effective decision per tool, for the Capabilities panel."""
        rows = []
        for tool in TOOLS:
            decision, rule = self.decide(tool, {}, sandboxed=sandboxed)
            rows.append({"tool": tool, "decision": decision, "rule": rule})
        return rows

    def to_toml(self) -> str:
        lines = [f"mode = {_q(self.mode)}", "", "[tools]"]
        lines += [f"{tool} = {_q(d)}" for tool, d in sorted(self.tools.items())]
        for rule in self.commands:
            lines += ["", "[[commands]]", f"pattern = {_q(rule.pattern)}",
                      f"decision = {_q(rule.decision)}"]  # fmt: skip
            if rule.description:
                lines.append(f"description = {_q(rule.description)}")
        return "\n".join(lines) + "\n"

    def save(self, path: Path | str | None = None) -> None:
        """Atomic write (temp file + rename): a crash never leaves half a policy."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ConfigError("policy: no path to save to")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(self.to_toml(), encoding="utf-8")
        os.replace(tmp, target)
        self.path = target


def _describe(rule: CommandRule, mine: list[CommandRule]) -> str:
    index = next((i for i, r in enumerate(mine, 1) if r is rule), 0)
    if index:
        extra = f": {rule.description}" if rule.description else ""
        # The pattern as written in the file (a repr would double every backslash).
        return f"commands #{index} '{rule.pattern}' = {rule.decision} (policy file){extra}"
    return rule.description


def _choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{what} must be one of {', '.join(allowed)} (got {value!r})")
    return str(value)


def _q(text: str) -> str:
    # A JSON string with ASCII escapes is a valid TOML basic string (DEL needs escaping too).
    return json.dumps(text).replace("\x7f", "\\u007f")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
