"""agent.secrets on a throwaway keyring file (the `temp_keyring` fixture), never the real one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keyring
import pytest

from agent import secrets
from agent.errors import CockpitError, MissingKeyError, UsageError

ROOT = Path(__file__).resolve().parent.parent


def test_keyring_lives_in_tmp(temp_keyring, tmp_path: Path) -> None:
    assert keyring.get_keyring() is temp_keyring
    assert str(temp_keyring.file_path).startswith(str(tmp_path))


def test_set_get_delete_roundtrip(temp_keyring) -> None:
    assert secrets.get_secret("github_token") is None
    secrets.set_secret("github_token", "ghp_abc123")
    secrets.set_secret("slack.webhook", "https://hooks.example/x")
    assert secrets.get_secret("github_token") == "ghp_abc123"
    assert secrets.list_secret_names() == ["github_token", "slack.webhook"]
    # Stored under our service name, not somewhere shared.
    assert keyring.get_password(secrets.SERVICE, "github_token") == "ghp_abc123"

    assert secrets.delete_secret("github_token") is True
    assert secrets.get_secret("github_token") is None
    assert secrets.delete_secret("github_token") is False
    assert secrets.list_secret_names() == ["slack.webhook"]


def test_overwrite_keeps_one_index_entry(temp_keyring) -> None:
    secrets.set_secret("token", "one")
    secrets.set_secret("token", "two")
    assert secrets.get_secret("token") == "two"
    assert secrets.list_secret_names() == ["token"]


@pytest.mark.parametrize("name", ["", "__names__", "has space", "../etc", "x" * 65])
def test_bad_names_are_usage_errors(temp_keyring, name: str) -> None:
    with pytest.raises(UsageError):
        secrets.set_secret(name, "v")


def test_empty_value_refused(temp_keyring) -> None:
    with pytest.raises(UsageError):
        secrets.set_secret("token", "")


def test_anthropic_key_env_wins_over_keyring(temp_keyring, monkeypatch) -> None:
    assert secrets.anthropic_api_key() is None
    secrets.set_secret("anthropic_api_key", "sk-from-keyring")
    assert secrets.anthropic_api_key() == "sk-from-keyring"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
    assert secrets.anthropic_api_key() == "sk-from-env"


def test_known_secret_values_for_redaction(temp_keyring, monkeypatch) -> None:
    secrets.set_secret("anthropic_api_key", "sk-ant-1")
    secrets.set_secret("db_password", "hunter2")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env-2")
    assert sorted(secrets.known_secret_values()) == ["hunter2", "sk-ant-1", "sk-env-2"]
    secrets.delete_secret("db_password")
    assert "hunter2" not in secrets.known_secret_values()


def test_anthropic_key_set_outside_index_is_still_redacted(temp_keyring) -> None:
    keyring.set_password(secrets.SERVICE, "anthropic_api_key", "sk-set-by-hand")
    assert secrets.known_secret_values() == ["sk-set-by-hand"]


def test_broken_keyring_gives_one_line_errors(broken_keyring, monkeypatch) -> None:
    with pytest.raises(CockpitError) as info:
        secrets.get_secret("token")
    assert "\n" not in str(info.value) and "keyring" in str(info.value).lower()
    with pytest.raises(CockpitError):
        secrets.set_secret("token", "v")
    with pytest.raises(MissingKeyError) as missing:
        secrets.anthropic_api_key()
    assert "\n" not in str(missing.value) and "ANTHROPIC_API_KEY" in str(missing.value)
    # Redaction must keep working without a keyring.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env")
    assert secrets.known_secret_values() == ["sk-env"]
    assert secrets.anthropic_api_key() == "sk-env"


def test_subprocess_shares_the_temp_keyring(temp_keyring) -> None:
    secrets.set_secret("shared", "from-parent")
    code = (
        "from agent import secrets; print(secrets.get_secret('shared'));"
        "secrets.set_secret('child', 'from-child')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "from-parent"
    assert secrets.get_secret("child") == "from-child"


def test_env_values_named_like_secrets_are_known(temp_keyring, monkeypatch) -> None:
    from agent.secrets import known_secret_values, secret_env_values

    env = {"GITHUB_TOKEN": "ghx-1234567890", "AWS_SECRET_ACCESS_KEY": "wJalr/XUtn/FEMI",
           "PGPASSWORD": "pg-pass-123", "DJANGO_SECRET_KEY": "dj-key-value-1",
           "SSH_AUTH_SOCK": "/tmp/ssh-x/agent.1", "GOOGLE_APPLICATION_CREDENTIALS_FILE": "/x.json",
           "API_KEY_PATH": "/etc/key", "FEATURE_TOKEN": "true", "HOME": "/root",
           "SHORT_KEY": "abc", "EDITOR": "vim-or-something"}  # fmt: skip
    assert sorted(secret_env_values(env)) == sorted(
        ["ghx-1234567890", "wJalr/XUtn/FEMI", "pg-pass-123", "dj-key-value-1"]
    )
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "svc-pass-9876")
    assert "svc-pass-9876" in known_secret_values()


# -- a write that did not happen is never reported as done ------------------------------------
NO_BACKENDS = ["keyring.backends.null.Keyring", "keyring.backends.fail.Keyring",
               "tests.keyring_backends.DroppingKeyring"]  # fmt: skip


@pytest.mark.parametrize("backend", NO_BACKENDS)
def test_set_without_a_usable_keyring_fails_and_claims_nothing(backend: str, temp_keyring) -> None:
    from tests.conftest import cli

    result = cli("secrets", "set", "github_token", input="ghx-value-123456\n",
                 env={"PYTHON_KEYRING_BACKEND": backend})  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stdout == "" and "stored" not in result.stderr.replace("nothing was stored", "")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "nothing was stored" in result.stderr
    assert "ANTHROPIC_API_KEY" in result.stderr or "keyring" in result.stderr  # names the fix
    assert secrets.get_secret("github_token") is None  # and the real (temp) keyring is untouched


@pytest.mark.parametrize("backend", NO_BACKENDS[:2])
def test_get_delete_list_without_a_keyring_say_so(backend: str) -> None:
    from tests.conftest import cli

    for args in (("get", "x"), ("delete", "x"), ("list",)):
        result = cli("secrets", *args, env={"PYTHON_KEYRING_BACKEND": backend})
        assert result.returncode == 4, (args, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and "no OS keyring" in result.stderr


def test_a_delete_the_keyring_ignores_is_reported(tmp_path: Path) -> None:
    from tests.conftest import cli

    env = {"PYTHON_KEYRING_BACKEND": "tests.keyring_backends.StickyKeyring",
           "LIVHANA_TEST_KEYRING_FILE": str(tmp_path / "sticky.json")}  # fmt: skip
    assert cli("secrets", "set", "tok", input="sticky-value-1\n", env=env).returncode == 0
    result = cli("secrets", "delete", "tok", env=env)
    assert result.returncode == 4 and "deleted" not in result.stdout
    assert "still holds tok" in result.stderr and result.stderr.count("\n") == 1


def test_set_reads_back_and_list_shows_what_is_there(temp_keyring) -> None:
    from tests.conftest import cli

    stored = cli("secrets", "set", "github_token", input="ghx-value-123456\n")
    assert stored.returncode == 0, stored.stderr
    assert "stored github_token" in stored.stdout and "PlaintextKeyring" in stored.stdout
    assert "ghx-value" not in stored.stdout
    assert secrets.get_secret("github_token") == "ghx-value-123456"
    # A name the index keeps but whose value the keyring lost is shown as lost.
    secrets.set_secret("lost_one", "lost-value-1")
    keyring.delete_password(secrets.SERVICE, "lost_one")
    listed = cli("secrets", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "github_token" and lines[1].startswith("lost_one") and "lost" in lines[1]
    assert "value" not in listed.stdout  # names only
    assert cli("secrets", "get").returncode == 2  # a NAME is needed


def test_set_secret_raises_when_the_keyring_keeps_nothing(monkeypatch) -> None:
    from tests.keyring_backends import DroppingKeyring

    keyring.set_keyring(DroppingKeyring())
    with pytest.raises(secrets.SecretStoreError, match="did not keep github_token"):
        secrets.set_secret("github_token", "ghx-value-123456")
