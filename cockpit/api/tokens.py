"""API tokens: HS256 JWTs signed with one secret per data dir.

The secret lives in the OS keyring (agent/secrets.py, name `api_jwt_secret`). Where there
is no usable keyring it goes in `<data dir>/api-jwt-secret`, created owner-only (0600), and
a one-line notice says so; a file anyone else could read is refused, not used. Creating
the secret is serialized by a lock file, so a daemon starting while `token create` runs
does not end up with a different secret than the token it signed.

Claims: `sub` (who: audited as `api:<sub>`), `scope` (operator | viewer), `iat`, `exp`,
`jti` (rate limits are per token), `iss`. Only HS256 is accepted: `alg: none` and every
other algorithm are refused by pyjwt's allow-list.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import re
import secrets as pysecrets
import socket
import stat
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import secrets as secrets_store
from agent.errors import CockpitError, UsageError

JWT_SECRET_NAME = secrets_store.JWT_SECRET_NAME  # one list of names: agent/secrets.py
SECRET_FILE = "api-jwt-secret"
ISSUER = "livhana-cockpit"
ALGORITHM = "HS256"
SCOPES = ("operator", "viewer")
LEEWAY_S = 5  # clocks differ a little: a token is good until 5 s past its `exp`
MAX_TTL_S = 366 * 86_400  # a token that outlives a year is a typo, or a leak waiting
_TTL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.I)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


class TokenError(CockpitError):
    """A token that cannot be used (the API answers 401 with this message)."""

    exit_code = 2


@dataclass(frozen=True)
class Principal:
    """Who a request is: the token's subject and scope."""

    subject: str
    scope: str
    token_id: str
    expires: float

    @property
    def actor(self) -> str:
        """How the audit log and the approval queue name this caller."""
        return f"api:{self.subject}"

    @property
    def can_act(self) -> bool:
        return self.scope == "operator"


def parse_ttl(text: str) -> float:
    """'8h', '30m', '2d', '90' (seconds) -> seconds; UsageError for anything else."""
    match = _TTL_RE.match(text or "")
    if not match:
        raise UsageError(f"--ttl must be a duration like 30m, 8h or 7d, got '{text[:40]}'")
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds < 1:
        raise UsageError(f"--ttl must be at least 1 second, got '{text[:40]}'")
    if seconds > MAX_TTL_S:
        raise UsageError(f"--ttl must be at most 366d, got '{text[:40]}'")
    return seconds


def default_subject() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's random uid)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def create_token(
    secret: str, *, scope: str = "operator", ttl_s: float = 8 * 3600, subject: str = ""
) -> str:
    import jwt

    if scope not in SCOPES:
        raise UsageError(f"scope must be one of {', '.join(SCOPES)}, got '{scope[:40]}'")
    subject = " ".join((subject or default_subject()).split())
    if not subject or len(subject) > 200:
        raise UsageError("--subject must be 1 to 200 characters")
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "scope": scope,
        "iat": now,
        "exp": now + int(round(ttl_s)),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> Principal:
    """The token's principal, or TokenError saying in one line why it is refused."""
    import jwt

    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
            leeway=LEEWAY_S,
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the token has expired: create a new one with `livhana-cockpit token create`") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError(f"the token is not signed with {ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise TokenError("the token's signature does not match this cockpit's secret") from None
    except jwt.PyJWTError as exc:
        raise TokenError(f"the token is not valid: {_short(exc)}") from None
    except Exception as exc:  # pyjwt on truly odd input (non-ASCII, huge numbers)
        raise TokenError(f"the token is not valid: {type(exc).__name__}") from None
    scope, subject, jti = claims.get("scope"), claims.get("sub"), claims.get("jti", "")
    if scope not in SCOPES:
        raise TokenError("the token has no valid scope (operator or viewer)")
    if not isinstance(subject, str) or not subject.strip():
        raise TokenError("the token has no subject")
    if not isinstance(jti, str):
        raise TokenError("the token's id (jti) is not a string")
    return Principal(subject, scope, jti or subject, float(claims["exp"]))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:120]


# -- the signing secret ------------------------------------------------------------------


def load_secret(data_dir: Path, notice: Any = None) -> str:
    """The signing secret: from the OS keyring, else the 0600 file in the data dir (made on
    first use, with a one-line notice through `notice`, default stderr)."""
    from agent import secrets
    from agent.secrets import SecretStoreError

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_FILE
    with _creation_lock(data_dir):
        if path.exists():  # chosen before: keep it, so tokens made with it stay valid
            return _read_file(path)
        try:
            value = secrets.get_secret(JWT_SECRET_NAME)
            if value:
                return value
            value = pysecrets.token_urlsafe(48)
            secrets.set_secret(JWT_SECRET_NAME, value)
            return value
        except SecretStoreError as exc:
            value = pysecrets.token_urlsafe(48)
            _write_file(path, value)
            say = notice or (lambda line: print(line, file=sys.stderr))
            say(
                f"livhana-cockpit: no usable OS keyring ({str(exc).split(':', 1)[0]}); the API "
                f"signing secret is kept in {path}, readable only by you (0600)"
            )
            return value


@contextlib.contextmanager
def _creation_lock(data_dir: Path) -> Iterator[None]:
    fd = os.open(data_dir / ".api-jwt-secret.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _write_file(path: Path, value: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask said
        os.write(fd, value.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_file(path: Path) -> str:
    try:
        info = path.lstat()
    except OSError as exc:
        raise TokenError(f"cannot read the API signing secret {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise TokenError(f"the API signing secret {path} is not a regular file; remove it")
    if info.st_mode & 0o077 or info.st_uid != os.getuid():
        raise TokenError(
            f"the API signing secret {path} can be read by others (mode "
            f"{stat.S_IMODE(info.st_mode):o}): remove it (a new one is made, and older "
            "tokens stop working) or `chmod 600` it"
        )
    value = path.read_text(encoding="ascii", errors="replace").strip()
    if len(value) < 32:
        raise TokenError(f"the API signing secret {path} is too short; remove it")
    return value


def token_command(data_dir: Path, scope: str, ttl: str, subject: str | None) -> int:
    """`livhana-cockpit token create`: the token alone on stdout (for `$(...)`), notices on
    stderr."""
    seconds = parse_ttl(ttl)
    secret = load_secret(data_dir)
    print(create_token(secret, scope=scope, ttl_s=seconds, subject=subject or ""))
    return 0
