"""JSON answers that never fail to encode: NaN and infinities become null, a string that
cannot be UTF-8 (a lone surrogate) is escaped, anything else unknown is its str()."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import Response

from .problems import Problem


def encode(data: Any) -> bytes:
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:  # a nan or inf somewhere
        text = json.dumps(_finite(data), ensure_ascii=False, default=str)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # valid JSON all the same: \ud800 escapes
        return json.dumps(_finite(data), ensure_ascii=True, default=str).encode("ascii")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(data), status, headers, media_type="application/json")


def refuse(problem: Problem) -> Response:
    return reply(problem.body(), problem.status, problem.headers)
