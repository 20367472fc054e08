"""Pilot tests: System Health's BigQuery export section (lag, last error) on the real engine
exporting to the fake BigQuery server, and the secrets dialog on a temporary keyring (its
Test calls the fake Anthropic server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Static

from agent import audit, secrets
from agent.config import load_config
from cockpit.app import CockpitApp
from cockpit.screens.secrets import SecretsDialog
from tests.fake_anthropic import FakeAnthropic
from tests.fake_bigquery import FakeBigQuery

from .support import panel_text, wait_for

SIZE = (120, 40)
KEY = "sk-ant-api03-" + "k" * 40 + "Zz42"


def cockpit(tmp_path: Path, endpoint: str | None = None) -> CockpitApp:
    config = load_config(tmp_path / "data")
    if endpoint:
        bq = config.bigquery
        bq.project, bq.dataset, bq.api_endpoint = "proj", "team", endpoint
        bq.interval_s, bq.retry_base_s, bq.retry_max_s, bq.timeout_s = 0.1, 0.1, 0.5, 5.0
    return CockpitApp(config)


async def type_text(pilot: Any, text: str) -> None:
    await pilot.press(*["space" if ch == " " else ch for ch in text])


async def started(pilot: Any) -> None:
    await wait_for(pilot, lambda: pilot.app.engine is not None, what="the engine")


def dialog_text(app: CockpitApp) -> str:
    return panel_text(app) if isinstance(app.screen, SecretsDialog) else ""


async def test_health_shows_the_export_lag_and_last_error(tmp_path: Path) -> None:
    with FakeBigQuery(dataset="team") as fake:
        fake.outage(503, "backendError")
        app = cockpit(tmp_path, fake.endpoint)
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            await audit.append(app.engine.store, "operator", "note", None, {})
            await pilot.press("escape", "8")  # the task field has focus on open
            await wait_for(pilot, lambda: "503 backendError" in panel_text(app), what="the error")
            text = panel_text(app)
            assert "BigQuery export" in text and "● fail proj.team · lag " in text
            assert "1 waiting" in text and "nothing sent yet" in text
            fake.recover()
            await wait_for(pilot, lambda: "nothing waiting" in panel_text(app), what="drained")
            text = panel_text(app)
            assert "● ok proj.team" in text and "last sent" in text
            assert "(since recovered)" in text


async def test_health_says_the_export_is_off(tmp_path: Path) -> None:
    app = cockpit(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("escape", "8")
        await wait_for(pilot, lambda: "BigQuery export" in panel_text(app)
                       and "off: set [bigquery] project and dataset" in panel_text(app),
                       what="export off")  # fmt: skip


async def test_the_secrets_dialog_sets_tests_and_removes_a_key(
    tmp_path: Path, temp_keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeAnthropic(api_key=KEY) as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        app = cockpit(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            await pilot.press("escape", "8", "k")  # from System Health
            await wait_for(pilot, lambda: "anthropic_api_key" in dialog_text(app), what="dialog")
            text = dialog_text(app)
            assert "api_jwt_secret" in text and "bigquery_credentials" in text
            assert "kept in keyrings.alt.file.PlaintextKeyring" in text

            await pilot.press("s")  # the highlighted row (the Anthropic key) gets the value
            await type_text(pilot, KEY)
            await pilot.press("enter")
            await wait_for(pilot, lambda: "stored anthropic_api_key" in dialog_text(app),
                           what="stored")  # fmt: skip
            assert secrets.get_secret("anthropic_api_key") == KEY
            text = dialog_text(app)
            assert KEY not in text and "sk-a…Zz42 (57 characters)" in text
            assert app.engine.safety.redact(f"key {KEY}") != f"key {KEY}"  # known at once

            await pilot.press("escape", "t")  # out of the field, then Test
            await wait_for(pilot, lambda: "the Anthropic API accepted the key" in dialog_text(app),
                           what="tested")  # fmt: skip

            await pilot.press("d")
            await wait_for(pilot, lambda: "Remove anthropic_api_key" in panel_text(app),
                           what="confirm")  # fmt: skip
            await pilot.press("y")
            await wait_for(pilot, lambda: "removed anthropic_api_key" in dialog_text(app),
                           what="removed")  # fmt: skip
            assert secrets.get_secret("anthropic_api_key") is None

            await pilot.press("t")
            await wait_for(pilot, lambda: "anthropic_api_key is not set" in dialog_text(app),
                           what="nothing to test")  # fmt: skip
            assert "anthropic_api_key: anthropic_api_key" not in dialog_text(app)
            await pilot.press("escape")
            assert not isinstance(app.screen, SecretsDialog) and app.current_mode == "health"


async def test_a_wrong_key_fails_its_test_and_a_bad_json_key_is_refused(
    tmp_path: Path, temp_keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeAnthropic(api_key=KEY) as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        secrets.set_secret("anthropic_api_key", "sk-ant-api03-not-the-right-one-0000")
        app = cockpit(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await started(pilot)
            await pilot.press("escape", "9", "k")  # from Safety Controls
            await wait_for(pilot, lambda: "…0000" in dialog_text(app), what="dialog")
            # On 80 columns the Value column is clipped; the line below says it whole.
            purpose = str(app.screen.query_one("#purpose", Static).render())
            assert "(set: sk-a…0000 (35 characters))" in purpose
            await pilot.press("t")
            await wait_for(pilot, lambda: "rejected (401)" in dialog_text(app), what="401")
            # A BigQuery key that is no key: refused, nothing stored.
            await pilot.press("down", "down", "s")
            await type_text(pilot, '{"type": "authorized_user"}')
            await pilot.press("enter")
            await wait_for(pilot, lambda: "is not a service-account key" in dialog_text(app),
                           what="refused")  # fmt: skip
            assert secrets.get_secret("bigquery_credentials") is None


async def test_without_a_keyring_the_dialog_names_the_fix(
    tmp_path: Path, broken_keyring: Any
) -> None:
    app = cockpit(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("ctrl+p")  # from the palette
        await type_text(pilot, "Secrets")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "no OS keyring on this machine" in dialog_text(app),
                       what="the problem")  # fmt: skip
        text = str(app.screen.query_one("#backend", Static).render())
        assert text.startswith("no OS keyring on this machine")
        assert "apt install gnome-keyring" in text and "ANTHROPIC_API_KEY" in text
        assert app.screen.query_one("#set", Button).disabled
        assert app.screen.query_one("#remove", Button).disabled
