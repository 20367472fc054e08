"""Who may call: the bearer token, the browser checks (Origin, Host) and the rate limit.

A browser page must never drive a local agent. Browsers send `Origin` on cross-site
requests, so one not listed in `[api] allowed_origins` is refused (CSRF); and while the API
is bound to loopback, a `Host` that is not a loopback name is refused too (DNS rebinding: a
page whose name now points at 127.0.0.1 is same-origin with itself, yet still says its own
name in Host).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterable

from .problems import Problem, unauthorized
from .tokens import LEEWAY_S, Principal, TokenError, verify_token

MAX_TOKEN_CHARS = 8192  # a JWT of ours is ~300; anything this long is not one


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    host = host_header.strip()
    if host.startswith("["):  # [::1]:4002
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class BrowserCheck:
    def __init__(self, allowed_origins: Iterable[str], loopback_only: bool) -> None:
        self.origins = {_norm_origin(o) for o in allowed_origins}
        self.loopback_only = loopback_only

    def check(self, origin: str | None, host: str | None) -> None:
        if origin is not None and _norm_origin(origin) not in self.origins:
            raise Problem(
                403,
                f"requests from origin '{origin[:100]}' are refused: a web page may not drive "
                "the agent (list trusted origins in [api] allowed_origins)",
                field="Origin",
            )
        if self.loopback_only and host and not is_loopback(_host_name(host)):
            raise Problem(
                403,
                f"Host '{host[:100]}' is not a loopback name: this API is served on loopback only",
                field="Host",
            )


def _norm_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class Verified:
    """Tokens this server has verified, until they expire: a client sends the same token
    with every request, and checking its signature each time was a tenth of the CPU of a
    status answer. Only a token that verified is kept, under its exact text, so a changed
    byte is checked afresh; one past its expiry is checked again (and refused)."""

    MAX = 4096  # distinct live tokens kept; beyond that the cache starts over

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._kept: dict[str, Principal] = {}

    def __call__(self, token: str) -> Principal:
        who = self._kept.get(token)
        if who is not None and time.time() < who.expires + LEEWAY_S:
            return who
        who = verify_token(self.secret, token)  # TokenError: not kept
        if len(self._kept) >= self.MAX:
            self._kept.clear()
        self._kept[token] = who
        return who


def bearer(authorization: str | None, verify: Verified) -> Principal:
    """The caller's principal from `Authorization: Bearer <jwt>`, or a 401 saying why."""
    if not authorization:
        raise unauthorized(
            "missing bearer token: send 'Authorization: Bearer <token>' "
            "(create one with `livhana-cockpit token create`)"
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("the Authorization header must be 'Bearer <token>'")
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise unauthorized("the token is not valid: too long")
    try:
        return verify(token)
    except TokenError as exc:
        raise unauthorized(str(exc)) from None


class RateLimit:
    """A token bucket per API token: `rate` requests a second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> None:
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            wait = math.ceil((1 - tokens) / self.rate)
            raise Problem(
                429,
                f"too many requests with this token: at most {self.rate:g} a second "
                f"(bursts of {self.burst:g}); retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 10_000:  # expired tokens' buckets: drop the full ones
            self._buckets = {
                k: v for k, v in self._buckets.items()
                if v[0] + (now - v[1]) * self.rate < self.burst
            }  # fmt: skip
