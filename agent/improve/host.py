"""What the self-improvement jobs and the scheduler need from the engine that hosts them:
a Protocol, so they never import the engine (it is the composition root; tests/test_shape.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..config import Config
    from ..models import Model
    from ..safety import Safety
    from ..store import Store


class ImproveHost(Protocol):
    config: Config
    store: Store
    safety: Safety  # redaction and the daily budget
    engine_id: str

    @property
    def stopped(self) -> bool:
        """An emergency stop is in force: nothing new starts."""

    def make_model(self, spec: str | None = None) -> Model: ...

    async def audit(
        self, actor: str, action: str, task_id: str | None, detail: dict[str, Any]
    ) -> None: ...

    async def get(self, task_id: str) -> dict[str, Any] | None: ...

    async def submit(
        self,
        title: str,
        workspace_dir: Path | str,
        *,
        approve: str = "ask",
        model: str | None = None,
        max_steps: int | None = None,
        max_cost: float | None = None,
        apply: bool = True,
    ) -> str: ...

    async def wait(self, task_id: str) -> dict[str, Any]: ...

    async def learnings(self, query: str | None = None) -> list[dict[str, Any]]: ...
