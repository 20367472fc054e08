"""The one test against a real Secret Service: gnome-keyring in a private D-Bus session
(`dbus-run-session`), driven through the real command line. Everything else uses the
temporary keyring; this proves the same calls work on the backend Linux desktops use.

`.ci/run` installs `dbus` and `gnome-keyring`; the test is skipped only when the two
programs are truly absent, and says which."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

NEEDED = ("dbus-run-session", "gnome-keyring-daemon")
MISSING = [tool for tool in NEEDED if shutil.which(tool) is None]
KEY = "sk-ant-api03-" + "s" * 40 + "Ss77"

SESSION = """\
set -u
# A fresh login keyring, unlocked with a throwaway password (no prompt, no display).
printf '%s' 'session-password' | gnome-keyring-daemon --unlock --components=secrets >/dev/null
lhc() { "$PY" -m cockpit "$@"; }
echo "== set"; printf '%s\\n' "$KEY" | lhc secrets set anthropic_api_key; echo "rc=$?"
echo "== get"; lhc secrets get anthropic_api_key; echo "rc=$?"
echo "== list"; lhc secrets list; echo "rc=$?"
echo "== raw"; "$PY" -c "import keyring; print(type(keyring.get_keyring()).__module__); \\
print(keyring.get_password('livhana-cockpit', 'anthropic_api_key') == '$KEY')"
echo "== delete"; lhc secrets delete anthropic_api_key; echo "rc=$?"
echo "== gone"; lhc secrets get anthropic_api_key; echo "rc=$?"
"""


@pytest.mark.skipif(bool(MISSING), reason=f"no real Secret Service here: {', '.join(MISSING)} "
                    "not installed (apt-get install dbus gnome-keyring; .ci/run does)")
def test_secrets_round_trip_through_a_real_secret_service(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "GNOME_KEYRING"))}
    env.update(
        HOME=str(home), XDG_DATA_HOME=str(home / ".local/share"), XDG_RUNTIME_DIR=str(runtime),
        XDG_CONFIG_HOME=str(home / ".config"), PY=sys.executable, KEY=KEY,
        PYTHON_KEYRING_BACKEND="keyring.backends.SecretService.Keyring",
        LIVHANA_DATA_DIR=str(tmp_path / "data"),
    )
    out = subprocess.run(["dbus-run-session", "--", "sh", "-c", SESSION], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    parts = dict(p.split("\n", 1) for p in out.stdout.split("== ")[1:])
    assert "rc=0" in parts.get("set", ""), out.stdout + out.stderr
    assert "stored anthropic_api_key" in parts["set"] and "SecretService" in parts["set"]
    assert parts["get"].splitlines() == ["anthropic_api_key: sk-a…Ss77 (57 characters)", "rc=0"]
    assert parts["list"].splitlines() == ["anthropic_api_key", "rc=0"]
    assert parts["raw"].splitlines() == ["keyring.backends.SecretService", "True"]
    assert parts["delete"].splitlines() == ["deleted anthropic_api_key from the OS keyring", "rc=0"]
    assert parts["gone"].strip().endswith("rc=2") and "no secret named" in out.stderr
    # gnome-keyring kept it in its own store, under the private home: nothing went elsewhere.
    assert list((home / ".local/share/keyrings").glob("*.keyring"))
    assert KEY not in out.stdout + out.stderr
