"""What a sandboxed command can see: the mounts bubblewrap builds for it.

An allowlist, not a denylist. bwrap starts from an empty root; the command gets, read-only,
the system (/usr, /etc, /opt, ... : `SYSTEM_ROOTS`), then the directories a build needs,
and the worktree read-write. Everything else is simply not there: every home (/home, /root,
$HOME wherever it is), /run (per-user runtime dirs, the D-Bus buses, agent sockets), /var
(databases, mail, backups, secret stores), /srv, /mnt, /media, the data dir (the store, other
tasks' worktrees and shadow checkpoints), and any other top-level directory.

Inside what is shown, what the system itself keeps private is masked: every entry under /etc
that is not world-readable (shadow, gshadow, sudoers, ssl/private, ...). A command sees the
system as an unprivileged local user would, even when the engine runs as root.

"What a build needs", decided case by case (each is a read-only bind):
- our own interpreter and venv (`python -m pytest` falls back to it);
- toolchains reached through $HOME or named by the environment (pyenv, rustup, cargo, go,
  nvm, JAVA_HOME, ...), with their credential files masked (~/.cargo/credentials.toml);
- the directories on $PATH that the allowlist hides (~/.local/bin, a venv's bin), unless one
  would re-expose a hidden place (PATH=$HOME), plus the install dirs their symlinks lead to
  (pipx venvs);
- the repository's git dir, found from the operator's workspace (never from the worktree's
  `.git` file, which the model can rewrite), with credentials stripped from its config;
- /var/lib dirs that hold toolchain files on some distributions (Debian's gems, ghc, texmf;
  openSUSE's CA bundle);
- what the operator lists in config `[sandbox] expose = [...]`.
The operator's dotfiles, caches with credentials (~/.m2/settings.xml, ~/.npmrc, ~/.netrc),
keyrings, ssh keys and shell history stay out: commands get HOME=/tmp/home, a private scratch.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import logging
import os
import pwd
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

SANDBOX_HOME = "/tmp/home"

# Read-only from the host, as they are.
SYSTEM_ROOTS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt", "nix",
                "gnu", "snap")  # fmt: skip
# Of /sys, the CPU list that nproc and os.cpu_count() read. Not all of /sys: it holds no user
# data, but its bind is recursive (every cgroup mount) and measured a third of the start cost.
SYS_DIRS = ("/sys/devices/system/cpu",)
# /var is hidden; these hold toolchain files on some distributions.
VAR_BUILD_DIRS = ("/var/lib/gems", "/var/lib/ghc", "/var/lib/texmf", "/var/lib/ca-certificates")
# /etc entries that are often symlinks into hidden places (/run, /var): their targets are
# shown, read-only (DNS, TLS roots, the time zone).
ETC_LINKS = ("/etc/resolv.conf", "/etc/hosts", "/etc/localtime", "/etc/ssl/certs",
             "/etc/ssl/cert.pem", "/etc/ssl/ca-bundle.pem", "/etc/pki/tls/certs")  # fmt: skip

# Toolchains found through $HOME: the variable that names each, and its default under $HOME.
TOOL_HOMES = {
    "PYENV_ROOT": ".pyenv",
    "RUSTUP_HOME": ".rustup",
    "CARGO_HOME": ".cargo",
    "GOPATH": "go",
    "NVM_DIR": ".nvm",
}
# More toolchain locations, used only when the environment names them.
TOOL_VARS = ("GOROOT", "GOMODCACHE", "JAVA_HOME", "ANDROID_HOME", "ANDROID_SDK_ROOT",
             "DOTNET_ROOT", "CONDA_PREFIX", "VIRTUAL_ENV", "GEM_HOME", "GEM_PATH", "RBENV_ROOT",
             "NODENV_ROOT", "VOLTA_HOME", "BUN_INSTALL", "DENO_INSTALL", "PNPM_HOME",
             "SDKMAN_DIR", "ASDF_DIR", "ASDF_DATA_DIR", "GRADLE_HOME", "M2_HOME", "MAVEN_HOME",
             "FLUTTER_ROOT")  # fmt: skip
# Credential files kept at the top of a toolchain dir (cargo's registry token, ...): masked.
CREDENTIAL_FILES = ("credentials", "credentials.toml", ".credentials", ".netrc", ".npmrc",
                    ".pypirc", ".git-credentials", "settings-security.xml")  # fmt: skip

# Places the environment says hold secrets or sockets: hidden even where the allowlist
# would show them (e.g. GNUPGHOME=/opt/keys).
SECRET_PATH_VARS = ("XDG_RUNTIME_DIR", "GNUPGHOME", "PASSWORD_STORE_DIR",
                    "KUBECONFIG", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                    "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "AZURE_CONFIG_DIR",
                    "DOCKER_CONFIG", "NETRC", "NPM_CONFIG_USERCONFIG", "PIP_CONFIG_FILE",
                    "SSH_AUTH_SOCK", "KRB5CCNAME", "PYTHON_KEYRING_FILE")  # fmt: skip
HOME_VARS = ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")
# Secret stores inside a home (and under XDG_DATA_HOME/XDG_CONFIG_HOME): no build dir may
# show them, e.g. PATH=~/.local would show ~/.local/share/python_keyring.
HOME_SECRETS = (".ssh", ".gnupg", ".password-store", ".aws", ".azure", ".kube", ".docker",
                ".netrc", ".npmrc", ".pypirc", ".git-credentials",
                ".gitconfig", ".m2/settings.xml", ".gradle/gradle.properties", ".pgpass",
                ".my.cnf", ".bash_history", ".zsh_history", ".python_history")  # fmt: skip
# ...and under the XDG data and config homes (defaults ~/.local/share, ~/.config).
XDG_SECRETS = ("python_keyring", "keyrings", "kwalletd", "gcloud", "gh", "hub", "git",
               "containers", "rclone", "Code/User/globalStorage")  # fmt: skip
_SECRETISH_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|SOCK", re.I)

log = logging.getLogger(__name__)
_CACHE_S = 30.0  # host facts (/etc's private entries, PATH symlinks) are re-read this often
_NULL = "/dev/null"


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class View:
    """The mounts of one command, in bwrap's order (a later mount covers earlier ones)."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.layers: list[tuple[str, bool]] = []  # (real path, shown?) in mount order

    def visible(self, real: str) -> bool:
        """Whether `real` shows at this point: the last mount at or above it decides."""
        for path, shown in reversed(self.layers):
            if _under(real, path):
                return shown
        return False

    def ro(self, path: str) -> None:
        self.args += ["--ro-bind", path, path]
        self.layers.append((path, True))

    def rw(self, path: str) -> None:
        self.args += ["--bind", path, path]
        self.layers.append((path, True))

    def mask(self, path: str) -> None:
        """Hide `path` where it shows: an empty tmpfs over a dir, /dev/null over a file."""
        if not self.visible(path):
            return
        if os.path.isdir(path):
            self.args += ["--tmpfs", path]
        elif os.path.lexists(path):
            self.args += ["--ro-bind", _NULL, path]
        self.layers.append((path, False))


# -- host facts, cached -----------------------------------------------------------------------
def _ttl_cache(fn):  # type: ignore[no-untyped-def]
    """functools.cache that forgets after _CACHE_S (a new sudoers file, a new pipx tool)."""
    cached = functools.lru_cache(maxsize=32)(lambda stamp, *a: fn(*a))

    @functools.wraps(fn)
    def wrapper(*args):  # type: ignore[no-untyped-def]
        return cached(int(time.monotonic() // _CACHE_S), *args)

    wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return wrapper


@_ttl_cache
def private_etc_entries(root: str = "/etc") -> tuple[str, ...]:
    """Entries under /etc that are not world-readable (or a dir not world-searchable) and
    that we can read: what an unprivileged user could not see. Not descended into."""
    found: list[str] = []
    todo = [root]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            public = st.st_mode & stat.S_IROTH and (not is_dir or st.st_mode & stat.S_IXOTH)
            if not public:
                if os.access(entry.path, os.R_OK):
                    found.append(entry.path)
            elif is_dir:
                todo.append(entry.path)
    return tuple(sorted(found))


def _homes() -> list[str]:
    """$HOME and the account's home from the password database (they can differ)."""
    homes = []
    if os.environ.get("HOME"):
        homes.append(_real(os.environ["HOME"]))
    with contextlib.suppress(KeyError, OSError):
        homes.append(_real(pwd.getpwuid(os.geteuid()).pw_dir))
    return [h for h in dict.fromkeys(homes) if h != "/"]


def _env_paths(names: Iterable[str]) -> list[str]:
    found = []
    for name in names:
        for part in os.environ.get(name, "").split(os.pathsep):
            if part.startswith("/") and os.path.lexists(part):
                found.append(_real(part))
    return found


def hidden_areas(workspace: str | None = None) -> list[str]:
    """Where people keep their files: hidden as a whole (masked where the allowlist would
    show them, e.g. HOME=/opt/op), though a build dir inside one may be shown. The operator's
    own checkout is one (its ignored files: .env; the task has its worktree), though its venv
    or node_modules/.bin may be a build dir."""
    areas = ["/home", "/root", "/run", "/var", "/srv", "/mnt", "/media", *_homes()]
    areas += _env_paths(HOME_VARS) + ([_real(workspace)] if workspace else [])
    # Never the system itself (XDG_DATA_HOME=/usr/share is a misconfiguration, not a home).
    return [a for a in dict.fromkeys(areas) if not _holds_system(a) and not _under(a, "/usr")]


def secret_stores(data_dir: str | None) -> list[str]:
    """Places never shown, not even in part: the data dir, runtime dirs with their sockets,
    keyrings, keys, and what the environment names as a secret store or socket."""
    stores = ["/run/user", "/var/lib"]
    if data_dir:
        stores.append(_real(data_dir))
    names = set(SECRET_PATH_VARS) | {n for n in os.environ if _SECRETISH_NAME.search(n)}
    stores += _env_paths(sorted(names))
    for home in _homes():
        stores += [os.path.join(home, sub) for sub in HOME_SECRETS]
        for var, default in (("XDG_DATA_HOME", ".local/share"), ("XDG_CONFIG_HOME", ".config")):
            base = os.environ.get(var, "")
            base = _real(base) if base.startswith("/") else os.path.join(home, default)
            stores += [os.path.join(base, sub) for sub in XDG_SECRETS]
    # Never one that would hide the system or everything (`AUTH_DIR=/etc`): those are
    # covered by the /etc scan, or are not secret stores at all.
    return [s for s in dict.fromkeys(stores) if not _holds_system(s)]


def _holds_system(path: str) -> bool:
    return any(_under(f"/{root}", path) for root in (*SYSTEM_ROOTS, "sys")) or path == "/"


def _tool_dirs() -> dict[str, str]:
    """Toolchain dirs by variable: the environment's, else the default under $HOME."""
    home = Path.home()
    found: dict[str, str] = {}
    for var, sub in TOOL_HOMES.items():
        found[var] = os.environ.get(var) or str(home / sub)
    for var in TOOL_VARS:
        if os.environ.get(var):
            found[var] = os.environ[var]
    return found


def tool_env() -> dict[str, str]:
    """The toolchain variables a command needs to find them after HOME moved (only those not
    already in its environment, and only for dirs that exist)."""
    return {
        var: str(Path.home() / sub)
        for var, sub in TOOL_HOMES.items()
        if var not in os.environ and (Path.home() / sub).is_dir()
    }


def interpreter_dirs() -> list[str]:
    """Where our own Python lives: commands such as the fallback `python -m pytest` run it."""
    paths = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(sys.executable), os.path.dirname(_real(sys.executable)))  # fmt: skip
    return [_real(p) for p in dict.fromkeys(paths) if p]


@_ttl_cache
def _link_targets(bindir: str) -> tuple[str, ...]:
    """Install dirs that executables in `bindir` link to (pipx: ~/.local/bin/x ->
    ~/.local/share/pipx/venvs/x/bin/x): the venv when the target is in one, else its dir."""
    found: list[str] = []
    try:
        entries = list(os.scandir(bindir))[:500]
    except OSError:
        return ()
    for entry in entries:
        if not entry.is_symlink():
            continue
        target = os.path.dirname(_real(entry.path))
        venv = os.path.dirname(target)
        found.append(venv if os.path.exists(os.path.join(venv, "pyvenv.cfg")) else target)
    return tuple(dict.fromkeys(found))


def build_dirs(expose: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Candidate read-only dirs for a build, real paths, most general first."""
    dirs = interpreter_dirs()
    for value in _tool_dirs().values():
        dirs += [_real(p) for p in value.split(os.pathsep) if p.startswith(("/", "~"))]
    dirs += [_real(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p.startswith("/")]
    dirs += [_real(p) for p in expose if str(p).strip()]
    # Ancestors first: a toolchain root makes its own bin dir (on PATH) redundant.
    return sorted({d for d in dirs if os.path.isdir(d)}, key=lambda d: (d.count("/"), d))


# -- the git dir ------------------------------------------------------------------------------
def git_dir_for(workspace: Path | str | None, worktree: str) -> str | None:
    """The git dir (common dir) of the operator's repository that `worktree` belongs to.

    Found from the workspace the engine was given (the operator's own files; the model can
    rewrite the worktree's `.git` file, so that is never read), and accepted only when the
    repository itself lists `worktree` as one of its worktrees."""
    if workspace is None:
        return None
    common = _common_dir(_real(workspace))
    if common is None or not _registered(common, worktree):
        return None
    return common


def _common_dir(workspace: str) -> str | None:
    here = Path(workspace)
    for folder in (here, *here.parents):  # a workspace may be a subfolder of its repo
        dotgit = folder / ".git"
        if dotgit.is_dir():
            gitdir = dotgit
        elif dotgit.is_file():  # the workspace is itself a worktree, or uses --separate-git-dir
            match = re.match(r"gitdir:\s*(.+)", dotgit.read_text(errors="replace"))
            if not match:
                return None
            gitdir = folder / match.group(1).strip()
        else:
            continue
        try:
            common = gitdir / (gitdir / "commondir").read_text().strip()
        except OSError:
            common = gitdir
        real = _real(common)
        looks_like_git = all(os.path.exists(os.path.join(real, n)) for n in ("HEAD", "objects"))
        return real if looks_like_git else None
    return None


def _registered(common: str, worktree: str) -> bool:
    want = os.path.join(_real(worktree), ".git")
    try:
        entries = list(os.scandir(os.path.join(common, "worktrees")))
    except OSError:
        return False
    for entry in entries:
        with contextlib.suppress(OSError):
            named = Path(entry.path, "gitdir").read_text().strip()
            if _real(named) == want:
                return True
    return False


def _alternates(common: str) -> list[str]:
    """Object stores this repository borrows from (`git clone --reference`)."""
    try:
        lines = Path(common, "objects", "info", "alternates").read_text().splitlines()
    except OSError:
        return []
    objects = os.path.join(common, "objects")
    found = [_real(os.path.join(objects, ln.strip())) for ln in lines if ln.strip()[:1] not in "#"]
    return [p for p in found if os.path.isdir(p)]


# `scheme://user:password@` and `https://token@`: credentials in a remote URL (also in a
# `[url "..."]` section name); and keys whose value is a secret (http.extraHeader holds
# `Authorization: ...`, sendemail.smtpPass, ...).
_URL_CREDS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s\"':]*)(?P<pw>:[^/@\s\"']*)?@"
)
_SECRET_KEY_LINE = re.compile(
    r"(?im)^(?P<key>\s*(?:extraheader|[A-Za-z0-9-]*(?:pass|token|secret|cookie)[A-Za-z0-9-]*)"
    r"\s*=).*$"
)


def sanitize_git_config(text: str) -> str:
    """The config without credentials: a URL keeps its user name only when a password
    followed it (over http a lone user part is often the token: https://ghp_x@github.com/)."""

    def url(m: re.Match[str]) -> str:
        user, scheme = m.group("user"), m.group("scheme")
        lone_http_user = not m.group("pw") and scheme.lower().startswith("http")
        return scheme + ("" if lone_http_user or not user else user + "@")

    text = _URL_CREDS.sub(url, text)
    return _SECRET_KEY_LINE.sub(lambda m: m.group("key") + " [REDACTED]", text)


_scratch: list[str] = []


def _scratch_dir() -> str:
    """A private (0700) folder of this process for files bound into sandboxes."""
    if not _scratch:
        path = tempfile.mkdtemp(prefix="livhana-sandbox-")
        _scratch.append(path)
        atexit.register(shutil.rmtree, path, True)
    return _scratch[0]


def _sanitized_config(common: str) -> str | None:
    """A copy of the repo's config without credentials, or None when it holds none."""
    try:
        text = Path(common, "config").read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    clean = sanitize_git_config(text)
    if clean == text:
        return None
    raw = clean.encode("utf-8", "surrogateescape")
    path = os.path.join(_scratch_dir(), hashlib.sha256(raw).hexdigest()[:20] + ".gitconfig")
    if not os.path.exists(path):
        tmp = path + f".{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, path)
    return path


# -- the view ---------------------------------------------------------------------------------
def build_view(
    worktree: str,
    *,
    data_dir: str | None = None,
    workspace: str | None = None,
    git_dir: str | None = None,
    extra_rw: list[str] | None = None,
    expose: list[str] | tuple[str, ...] = (),
) -> View:
    """The mounts for a command in `worktree` (a real path), in this order: the system,
    scratch dirs, masks over private places the system roots would show, build dirs, the
    git dir, then the worktree (inside the data dir, so it must come after its mask)."""
    # Everything but the git dir and the worktree depends only on the host and the
    # environment: built once per _CACHE_S (it walks many paths), copied per command.
    env = tuple(sorted(os.environ.items()))
    base = _base_view(data_dir, workspace, tuple(map(str, expose)), env)
    view = View()
    view.args, view.layers = list(base.args), list(base.layers)
    if git_dir:
        view.ro(git_dir)
        if clean := _sanitized_config(git_dir):
            view.args += ["--ro-bind", clean, os.path.join(git_dir, "config")]
        for alt in _alternates(git_dir):
            if not view.visible(alt) and _may_show(alt, secret_stores(data_dir)):
                view.ro(alt)
    for path in [worktree, *(extra_rw or [])]:
        view.rw(path)  # same path inside and out, so paths in output match
    return view


@_ttl_cache
def _base_view(
    data_dir: str | None, workspace: str | None, expose: tuple[str, ...], env: object
) -> View:
    """The host part of a view (`env`, the environment, is only the cache key)."""
    view = View()
    areas, stores = hidden_areas(workspace), secret_stores(data_dir)
    links = []
    for name in SYSTEM_ROOTS:
        path = f"/{name}"
        if os.path.islink(path):
            links.append(path)
        elif os.path.isdir(path):
            view.ro(path)
    for path in links:  # /bin -> usr/bin; or /opt -> /data/opt, whose target must show too
        target = _real(path)
        if os.path.isdir(target) and not view.visible(target):
            if not _may_show(target, [*stores, *areas], inside_ok=areas):
                continue
            view.ro(target)
        view.args += ["--symlink", os.readlink(path), path]
    view.args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
    view.args += ["--dir", SANDBOX_HOME]
    for path in (*SYS_DIRS, *VAR_BUILD_DIRS):
        if os.path.isdir(path):
            view.ro(_real(path))
    for link in ETC_LINKS:  # their targets may live in /run or /var, not in a home
        target = _real(link)
        if view.visible(target) or not os.path.exists(target):
            continue
        if _may_show(target, [*stores, *areas], inside_ok=["/run", "/var"]):
            view.ro(target)
    for path in [*private_etc_entries(), *areas, *stores]:
        view.mask(path)
    todo = build_dirs(expose)
    while todo:
        path = todo.pop(0)
        if view.visible(path):
            continue
        if not _may_show(path, [*stores, *areas], inside_ok=areas):
            _refused(path, expose)  # it would show a private place
            continue
        view.ro(path)
        todo += _link_targets(path)
        for name in CREDENTIAL_FILES:
            cred = os.path.join(path, name)
            if os.path.isfile(cred) and not os.path.islink(cred):
                view.args += ["--ro-bind", _NULL, cred]
    return view


_told: set[str] = set()


def _refused(path: str, expose: list[str] | tuple[str, ...]) -> None:
    """Say once why a path the operator asked for in `[sandbox] expose` is not shown."""
    if path in _told or path not in {_real(p) for p in expose if str(p).strip()}:
        return
    _told.add(path)
    log.warning("sandbox.expose: %s is not shown to commands: it is, holds or lies in a home, "
                "the data dir or a secret store", path)  # fmt: skip


def _may_show(path: str, private: list[str], inside_ok: list[str] | None = None) -> bool:
    """False when showing `path` would show a private place: it is one, holds one, or lies
    inside one (except inside those in `inside_ok`: a toolchain dir inside a home)."""
    for place in private:
        if _under(place, path):
            return False
        if _under(path, place) and place not in (inside_ok or ()):
            return False
    return path != "/"


def operator_view(worktree: str, *, data_dir: str | None, extra_rw: list[str] | None) -> View:
    """The wider view for a deploy (the operator's own configured command, approved each
    time, that needs their credentials): / read-only as the operator sees it, with a private
    /tmp, and the data dir (the store, other tasks) still hidden."""
    view = View()
    view.ro("/")
    view.args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--dir", SANDBOX_HOME]
    if data_dir:
        view.mask(_real(data_dir))
    for path in interpreter_dirs():
        if _under(path, "/tmp"):
            view.ro(path)
    for path in [worktree, *(extra_rw or [])]:
        view.rw(path)
    return view
