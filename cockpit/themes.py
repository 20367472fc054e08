"""Themes as files: every `themes/*.toml` becomes a `textual.theme.Theme`.

A theme file holds the Theme fields at top level (name, primary, background, dark, ...)
and an optional [variables] table of extra CSS variables.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from pathlib import Path

from textual.theme import Theme

log = logging.getLogger(__name__)
_FIELDS = {f.name for f in dataclasses.fields(Theme)}


def themes_dir() -> Path:
    import themes

    return Path(themes.__file__).parent


def load_theme(path: Path) -> Theme:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    raw.setdefault("name", path.stem)
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise ValueError(f"{path.name}: unknown theme key {unknown[0]!r}")
    return Theme(**raw)


def load_themes(directory: Path | None = None) -> list[Theme]:
    """Every valid theme in the directory; a broken file is logged and skipped."""
    found: list[Theme] = []
    for path in sorted((directory or themes_dir()).glob("*.toml")):
        try:
            found.append(load_theme(path))
        except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
            log.warning("theme %s skipped: %s", path, exc)
    return found
