"""What the API answers when it refuses: one JSON shape, one line of text.

`{"error": "<one line>", "field"?: "<the body field or header at fault>", ...}` with the
status code that says why (400 malformed, 401 who are you, 403 not allowed, 404 no such
task, 409 the task's state says no, 413 too large, 422 a field is wrong, 429 slow down).
"""

from __future__ import annotations

from typing import Any


class Problem(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split())  # one line, whatever it quotes
        self.field = field
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.field:
            out["field"] = self.field
        out.update(self.extra)
        return out


def unauthorized(message: str) -> Problem:
    # RFC 6750: say which scheme, and why, so a client can tell "log in" from "renew".
    return Problem(
        401, message, headers={"WWW-Authenticate": 'Bearer realm="livhana-cockpit"'}
    )


def invalid(field: str, message: str, status: int = 422) -> Problem:
    return Problem(status, f"{field}: {message}", field=field)
