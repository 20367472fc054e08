"""Model providers. `anthropic` is imported lazily so the UI paints without it."""

from __future__ import annotations

from .base import Model, ModelResponse, Usage

__all__ = ["Model", "ModelResponse", "Usage", "make_model"]


def make_model(spec: str, **kwargs: object) -> Model:
    """`spec` is `scripted:PATH` for a replayed script, otherwise an Anthropic model id."""
    if spec.startswith("scripted:"):
        from .scripted import ScriptedModel

        return ScriptedModel.from_file(spec.split(":", 1)[1])
    from .anthropic import AnthropicModel

    return AnthropicModel(model=spec, **kwargs)  # type: ignore[arg-type]
