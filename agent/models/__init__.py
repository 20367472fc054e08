"""Model providers. `anthropic` is imported lazily so the UI paints without it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .base import Model, ModelResponse, Usage

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["Model", "ModelResponse", "Usage", "make_model", "model_factory_for"]


def make_model(spec: str, **kwargs: object) -> Model:
    """`spec` is `scripted:PATH` for a replayed script, otherwise an Anthropic model id."""
    if spec.startswith("scripted:"):
        from .scripted import ScriptedModel

        return ScriptedModel.from_file(spec.split(":", 1)[1])
    from .anthropic import AnthropicModel

    return AnthropicModel(model=spec, **kwargs)  # type: ignore[arg-type]


def model_factory_for(config: Config) -> Callable[[str], Model]:
    """Model spec -> model, with the engine settings (thinking, retries) applied."""

    def factory(spec: str) -> Model:
        if spec.startswith("scripted:"):
            return make_model(spec)
        e = config.engine
        return make_model(
            spec,
            thinking_budget=e.thinking_budget,
            max_tokens=e.max_output_tokens,
            max_retries=e.model_retries,
            retry_base_s=e.retry_base_s,
        )

    return factory
