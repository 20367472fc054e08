"""The ten panels: key, mode name, title and where the screen lives.

Screens are imported on first visit (a mode factory), so the first frame pays only for
the panel it shows.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from textual.screen import Screen


@dataclass(frozen=True)
class Panel:
    key: str
    mode: str
    title: str
    short: str
    module: str
    cls: str

    def factory(self) -> Callable[[], Screen[None]]:
        def build() -> Screen[None]:
            module = importlib.import_module(f"cockpit.screens.{self.module}")
            return getattr(module, self.cls)()

        return build


PANELS: tuple[Panel, ...] = (
    Panel("1", "tasks", "Task Execution", "Run", "task_execution", "TaskExecutionScreen"),
    Panel("2", "active", "Active Tasks", "Active", "active_tasks", "ActiveTasksScreen"),
    Panel("3", "approvals", "Approval Queue", "Approvals", "approvals", "ApprovalsScreen"),
    Panel("4", "learnings", "Learnings", "Learn", "learnings", "LearningsScreen"),
    Panel("5", "capabilities", "Capabilities", "Tools", "capabilities", "CapabilitiesScreen"),
    Panel("6", "history", "Execution History", "History", "history", "HistoryScreen"),
    Panel("7", "improve", "Self-Improvement", "Improve", "improvement", "ImprovementScreen"),
    Panel("8", "health", "System Health", "Health", "health", "HealthScreen"),
    Panel("9", "safety", "Safety Controls", "Safety", "safety", "SafetyScreen"),
    Panel("0", "metrics", "Charts & Metrics", "Metrics", "metrics", "MetricsScreen"),
)
BY_MODE = {p.mode: p for p in PANELS}
