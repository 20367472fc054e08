"""The ten capabilities offered to the model. One module per tool, each exporting `tool`."""

from __future__ import annotations

import importlib

from .base import Tool, ToolContext, ToolResult, spec

__all__ = ["TOOL_NAMES", "Tool", "ToolContext", "ToolResult", "load_tools", "spec"]

TOOL_NAMES = (
    "read_file",
    "write_file",
    "execute_bash",
    "search_codebase",
    "run_tests",
    "deploy_code",
    "query_database",
    "analyze_logs",
    "generate_reports",
    "update_plan",
)


def load_tools() -> dict[str, Tool]:
    """Name -> tool, in the contract's order (a stable order keeps the prompt cache warm)."""
    tools: dict[str, Tool] = {}
    for name in TOOL_NAMES:
        module = importlib.import_module(f"{__name__}.{name}")
        tools[name] = module.tool
    return tools
