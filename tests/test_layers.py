"""The engine must never depend on the UI: agent/ imports neither textual nor cockpit."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

AGENT = Path(__file__).resolve().parent.parent / "agent"


def test_agent_sources_never_import_ui() -> None:
    offenders = []
    for path in AGENT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in ("textual", "cockpit")
            ]
    assert offenders == []


def test_importing_the_engine_loads_no_ui_and_no_heavy_sdk() -> None:
    code = (
        "import sys, agent.engine, agent.models, agent.tools; agent.tools.load_tools();"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'cockpit', 'anthropic', 'google')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
