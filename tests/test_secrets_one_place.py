"""Secrets in one place: every key and credential under one keyring service, set / get
(masked) / delete / list / test from the command line, on a temporary keyring; the real
calls of `secrets test` go to the fake Anthropic and BigQuery servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keyring
import pytest

from agent import secrets
from tests.conftest import cli
from tests.fake_anthropic import FakeAnthropic
from tests.fake_bigquery import FakeBigQuery

ANTHROPIC = "sk-ant-api03-" + "x" * 40 + "Q9zZ"
JWT_SECRET = "3f1d2a" * 8


def configure_bigquery(fake: FakeBigQuery, data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "config.toml").write_text(
        f'[bigquery]\nproject = "proj"\ndataset = "team"\napi_endpoint = "{fake.endpoint}"\n'
    )


def test_every_kind_of_secret_lives_under_the_one_service(temp_keyring: Any, tmp_path: Path) -> None:
    with FakeBigQuery(dataset="team") as fake:
        key = fake.service_account("proj")
    (tmp_path / "key.json").write_text(json.dumps(key, indent=2))
    assert cli("secrets", "set", "anthropic_api_key", input=ANTHROPIC + "\n").returncode == 0
    assert cli("secrets", "set", "api_jwt_secret", input=JWT_SECRET + "\n").returncode == 0
    stored = cli("secrets", "set", "bigquery_credentials", "--from-file", str(tmp_path / "key.json"))
    assert stored.returncode == 0, stored.stderr
    assert cli("secrets", "set", "github_token", input="ghp_" + "a" * 36 + "\n").returncode == 0
    for name in ("anthropic_api_key", "api_jwt_secret", "bigquery_credentials", "github_token"):
        assert keyring.get_password(secrets.SERVICE, name), name
    assert json.loads(secrets.get_secret("bigquery_credentials") or "") == key
    listed = cli("secrets", "list").stdout.split()
    assert listed == ["anthropic_api_key", "api_jwt_secret", "bigquery_credentials", "github_token"]

    # get shows a masked form; --reveal the value, for a script.
    got = {n: cli("secrets", "get", n).stdout.strip() for n in listed}
    assert got["anthropic_api_key"] == "anthropic_api_key: sk-a…Q9zZ (57 characters)"
    assert got["bigquery_credentials"] == (f"bigquery_credentials: service account "
                                           f"{key['client_email']} (project proj, key "
                                           f"…{key['private_key_id'][-4:]})")  # fmt: skip
    everything = "\n".join(got.values())
    assert ANTHROPIC not in everything and JWT_SECRET not in everything
    assert "PRIVATE KEY" not in everything and "aaaaaaaaaaaaaaaa" not in everything
    assert cli("secrets", "get", "api_jwt_secret", "--reveal").stdout == JWT_SECRET + "\n"

    # The private key is a redaction target on its own, and line by line.
    known = secrets.known_secret_values()
    assert key["private_key"] in known
    assert key["private_key"].splitlines()[3] in known

    assert cli("secrets", "delete", "bigquery_credentials").returncode == 0
    assert keyring.get_password(secrets.SERVICE, "bigquery_credentials") is None
    assert "bigquery_credentials" not in cli("secrets", "list").stdout
    for name in ("anthropic_api_key", "api_jwt_secret", "github_token"):
        assert cli("secrets", "delete", name).returncode == 0
    empty = cli("secrets", "list")
    assert empty.returncode == 0 and empty.stdout == ""
    assert empty.stderr == "no secrets in the OS keyring under livhana-cockpit\n"


@pytest.mark.parametrize("content, why", [
    ("not json", "is not JSON"),
    ('{"type": "authorized_user", "client_id": "x"}', "is not a service-account key"),
    ('{"type": "service_account", "client_email": "a@b"}', "lacks private_key, token_uri"),
])  # fmt: skip
def test_a_bigquery_key_that_cannot_work_is_refused(
    content: str, why: str, temp_keyring: Any, tmp_path: Path
) -> None:
    (tmp_path / "k.json").write_text(content)
    result = cli("secrets", "set", "bigquery_credentials", "--from-file", str(tmp_path / "k.json"))
    assert result.returncode == 2 and why in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert secrets.get_secret("bigquery_credentials") is None


def test_bad_flags_and_files_are_one_line(temp_keyring: Any, tmp_path: Path) -> None:
    missing = cli("secrets", "set", "x_token", "--from-file", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert missing.stderr.count("\n") == 1
    wrong = cli("secrets", "get", "x_token", "--from-file", str(tmp_path / "nope.json"))
    assert wrong.returncode == 2 and "--from-file is for `secrets set`" in wrong.stderr
    assert cli("secrets", "set", "x_token", "--reveal", input="v\n").returncode == 2


def test_without_a_keyring_each_secret_names_its_own_way_around() -> None:
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    ways = {"anthropic_api_key": "ANTHROPIC_API_KEY",
            "api_jwt_secret": "0600",
            "bigquery_credentials": "Application Default Credentials",
            "github_token": "its own configuration"}  # fmt: skip
    sa = json.dumps({"type": "service_account", "client_email": "e@p.iam.gserviceaccount.com",
                     "private_key": "k" * 40, "token_uri": "https://oauth2.googleapis.com/token"})
    for name, way in ways.items():
        value = sa if name == "bigquery_credentials" else "some-value-123456"
        result = cli("secrets", "set", name, input=value + "\n", env=env)
        assert result.returncode == 4 and result.stderr.count("\n") == 1, result.stderr
        assert "no OS keyring on this machine" in result.stderr and way in result.stderr
        assert "apt install gnome-keyring" in result.stderr  # and the fix itself


# -- secrets test ------------------------------------------------------------------------------
def test_the_anthropic_key_is_tested_with_a_real_call(temp_keyring: Any) -> None:
    with FakeAnthropic(api_key=ANTHROPIC) as fake:
        env = {"ANTHROPIC_BASE_URL": fake.url}
        unset = cli("secrets", "test", "anthropic_api_key", env=env)
        assert unset.returncode == 4
        assert unset.stderr == "livhana-cockpit: anthropic_api_key is not set\n"
        secrets.set_secret("anthropic_api_key", ANTHROPIC)
        good = cli("secrets", "test", "anthropic_api_key", env=env)
        assert good.returncode == 0, good.stderr
        assert good.stdout.startswith("anthropic_api_key: ok: the Anthropic API accepted the key")
        secrets.set_secret("anthropic_api_key", "sk-ant-api03-wrong-" + "y" * 30)
        bad = cli("secrets", "test", "anthropic_api_key", env=env)
        assert bad.returncode == 4 and "rejected (401)" in bad.stderr
        assert bad.stderr.count("\n") == 1 and "wrong-yyyy" not in bad.stderr


def test_the_bigquery_key_is_tested_with_a_dry_run(temp_keyring: Any, tmp_path: Path) -> None:
    with FakeBigQuery(dataset="team", require_auth=True) as fake:
        configure_bigquery(fake, tmp_path / "data")
        key = fake.service_account("proj")
        secrets.set_secret("bigquery_credentials", json.dumps(key))
        good = cli("secrets", "test", "bigquery_credentials")
        assert good.returncode == 0, good.stderr
        assert f"BigQuery accepted {key['client_email']} in project proj" in good.stdout
        dry = [b for m, p, b in fake.requests if p.endswith("/jobs")]
        assert dry and dry[-1]["configuration"]["dryRun"] is True
        # A key BigQuery's token endpoint does not know: the refusal, in one line.
        with FakeBigQuery(dataset="team") as other:
            stranger = other.service_account("proj")
        secrets.set_secret("bigquery_credentials", json.dumps({**stranger,
                                                                "token_uri": key["token_uri"]}))
        bad = cli("secrets", "test", "bigquery_credentials")
        assert bad.returncode == 4 and "invalid_grant" in bad.stderr, bad.stderr
        assert bad.stderr.count("\n") == 1 and "PRIVATE" not in bad.stderr


def test_the_api_signing_secret_is_tested_by_signing(temp_keyring: Any) -> None:
    secrets.set_secret("api_jwt_secret", "too-short-1")
    short = cli("secrets", "test", "api_jwt_secret")
    assert short.returncode == 4 and "at least 32" in short.stderr
    secrets.set_secret("api_jwt_secret", JWT_SECRET)
    good = cli("secrets", "test", "api_jwt_secret")
    assert good.returncode == 0 and "signs and verifies HS256 tokens" in good.stdout
    secrets.set_secret("github_token", "ghp_" + "b" * 36)
    other = cli("secrets", "test", "github_token")
    assert other.returncode == 0 and "stored (40 characters)" in other.stdout
