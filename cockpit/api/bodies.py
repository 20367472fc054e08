"""Request bodies: read within the size limit, parsed as JSON, each field checked.

The limit is enforced while reading (a declared Content-Length over it is refused before
a byte is read; an undeclared or lying one is cut off as soon as it passes the limit),
so a huge body never sits in memory. Every refusal names the field.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from .problems import Problem, invalid

if TYPE_CHECKING:
    from starlette.requests import Request

MAX_BODY = 1024 * 1024  # 1 MB
# A whole number as headers and queries carry it: ASCII digits only (str.isdigit() also
# takes '²', which int() refuses), and short (int() refuses 4,300+ digits).
WHOLE = re.compile(r"^[0-9]{1,15}$")


def _too_large() -> Problem:
    return Problem(413, f"the request body is over {MAX_BODY // 1024} KB", field="body")


async def read_json(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object; {} for an empty body when not `required`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not WHOLE.match(declared.strip()):
            raise Problem(400, "Content-Length is not a number", field="Content-Length")
        if int(declared) > MAX_BODY:
            raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _too_large()
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if required:
            raise Problem(400, "the request body is empty: send a JSON object", field="body")
        return {}
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise Problem(400, "the request body is not UTF-8", field="body") from None
    except (ValueError, RecursionError) as exc:
        raise Problem(400, f"the request body is not valid JSON: {str(exc)[:120]}", field="body") from None
    if not isinstance(body, dict):
        raise Problem(400, f"the request body must be a JSON object, got {_kind(body)}", field="body")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def only(body: dict[str, Any], allowed: tuple[str, ...], hint: dict[str, str] | None = None) -> None:
    for key in body:
        if key not in allowed:
            more = (hint or {}).get(key, f"allowed: {', '.join(allowed)}")
            raise invalid(str(key)[:60], f"unknown field ({more})")


def text(body: dict[str, Any], name: str, *, required: bool = False, limit: int = 10_000) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(name, "required (a non-empty string)")
        return None
    if not isinstance(value, str):
        raise invalid(name, f"must be a string, got {_kind(value)}")
    if required and not value.strip():
        raise invalid(name, "must not be empty")
    if len(value) > limit:
        raise invalid(name, f"is longer than {limit:,} characters")
    return value


def flag(body: dict[str, Any], name: str, *, required: bool = False) -> bool | None:
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(name, "required (true or false)")
        return None
    if not isinstance(value, bool):
        raise invalid(name, f"must be true or false, got {_kind(value)}")
    return value


def number(body: dict[str, Any], name: str, *, whole: bool = False) -> float | int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(name, f"must be a number, got {_kind(value)}")
    if whole and not isinstance(value, int):
        raise invalid(name, "must be a whole number")
    return value


def choice(body: dict[str, Any], name: str, options: tuple[str, ...], default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or value not in options:
        shown = json.dumps(value)[:40] if not isinstance(value, str) else f"'{value[:40]}'"
        raise invalid(name, f"must be one of {', '.join(options)}, got {shown}")
    return value


def mapping(body: dict[str, Any], name: str, *, limit: int = 8_000) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(name, f"must be an object, got {_kind(value)}")
    if len(json.dumps(value, ensure_ascii=False)) > limit:
        raise invalid(name, f"is larger than {limit:,} characters as JSON")
    return value
