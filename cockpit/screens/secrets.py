"""The secrets dialog: every key and credential the cockpit keeps in the OS keyring (one
service, "livhana-cockpit"), shown masked; set, test and remove them. Opened with `k` on
System Health and Safety Controls, or "Secrets" in the palette.

Keyring calls can block (a D-Bus round trip, an unlock prompt) and tests make network calls:
all of them run in workers, never on the event loop. A value typed here goes to the keyring
and nowhere else; the running engine (and any other process's, through a control row) is
told to redact the new value at once. Where there is no keyring backend, the dialog says
so, names the fix, and offers no Set."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from .. import fmt
from ..widgets import Confirm, KeyedTable, put

if TYPE_CHECKING:
    from ..app import CockpitApp


def secret_rows(found: list[tuple[str, bool]], values: dict[str, str | None]
                ) -> dict[str, tuple[str, ...]]:  # fmt: skip
    """Every known secret (set or not), then the other names in the keyring."""
    from agent import secrets

    names = [k.name for k in secrets.KNOWN] + sorted(
        n for n, _ in found if n not in secrets.KNOWN_BY_NAME)
    rows = {}
    for name in names:
        value = values.get(name)
        shown = (fmt.escape(secrets.mask(name, value)) if value
                 else fmt.paint("not set", "muted"))  # fmt: skip
        rows[name] = (fmt.cell(name, 22), fmt.cell(secrets.known(name).title, 26), shown)
    return rows


class SecretsDialog(ModalScreen[None]):
    CSS_PATH = "secrets.tcss"
    AUTO_FOCUS = "KeyedTable"
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("s", "focus_value", "Set", id="secrets.set"),
        Binding("t", "test", "Test", id="secrets.test"),
        Binding("d,delete", "remove", "Remove", id="secrets.remove"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._values: dict[str, str | None] = {}
        self.problem: str | None = None  # why the keyring cannot keep secrets here

    @property
    def cockpit(self) -> CockpitApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Secrets — OS keyring, service livhana-cockpit", id="title")
            yield Static("[dim]looking for the keyring…[/]", id="backend")
            yield KeyedTable(("Name", 22), ("For", 26), ("Value", 40), id="secrets")
            yield Static("", id="purpose")
            with Horizontal(id="fields"):
                yield Input(placeholder="name", id="name")
                yield Input(placeholder="new value (hidden); a JSON key: its file's path",
                            password=True, id="value")  # fmt: skip
            with Horizontal(id="buttons"):
                yield Button("Set (s)", id="set", variant="primary")
                yield Button("Test (t)", id="test")
                yield Button("Remove (d)", id="remove", variant="error")
                yield Button("Close (esc)", id="close")
            yield Static("", id="result")

    def on_mount(self) -> None:
        self.run_worker(self._load(), group="secrets", exclusive=True)

    # -- reading ---------------------------------------------------------------------------
    async def _load(self) -> None:
        from agent import secrets

        self.problem = await asyncio.to_thread(secrets.keyring_problem)
        backend = self.query_one("#backend", Static)
        if self.problem:
            put(backend, fmt.paint(self.problem, "bad"))
            found: list[tuple[str, bool]] = []
            self._values = {}
        else:
            where = await asyncio.to_thread(secrets.describe_backend)
            put(backend, f"[dim]kept in {fmt.escape(where)}[/]")
            found, self._values = await asyncio.to_thread(self._read_all)
        for button in ("#set", "#remove"):
            self.query_one(button, Button).disabled = bool(self.problem)
        table = self.query_one("#secrets", KeyedTable)
        table.sync(secret_rows(found, self._values))
        self._describe(table.selected_key)

    @staticmethod
    def _read_all() -> tuple[list[tuple[str, bool]], dict[str, str | None]]:
        from agent import secrets

        found = secrets.list_secrets()
        names = {k.name for k in secrets.KNOWN} | {n for n, _ in found}
        return found, {n: secrets.get_secret(n) for n in names}

    @on(KeyedTable.RowHighlighted, "#secrets")
    def _highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        self._describe(event.row_key.value)

    def _describe(self, name: str | None) -> None:
        from agent import secrets

        if not name:
            return
        self.query_one("#name", Input).value = name
        info = secrets.known(name)
        value = self._values.get(name)
        # The masked value again, in full: the table's Value column is clipped on 80 columns.
        state = f"set: {secrets.mask(name, value)}" if value else "not set"
        put(self.query_one("#purpose", Static),
            f"[b]{fmt.escape(name)}[/]: {fmt.escape(info.purpose)} [dim]({fmt.escape(state)})[/]")

    def _chosen(self) -> str:
        return self.query_one("#name", Input).value.strip()

    def _say(self, ok: bool, text: str) -> None:
        mark = fmt.paint("✓", "ok") if ok else fmt.paint("✗", "bad")
        put(self.query_one("#result", Static), f"{mark} {fmt.escape(text)}")

    # -- actions ---------------------------------------------------------------------------
    def action_close(self) -> None:
        if isinstance(self.focused, Input):  # Escape leaves a field first, as on the panels
            self.query_one("#secrets", KeyedTable).focus()
            return
        self.dismiss(None)

    def action_focus_value(self) -> None:
        self.query_one("#value", Input).focus()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#set")
    @on(Input.Submitted, "#value")
    def action_set(self) -> None:
        name, value = self._chosen(), self.query_one("#value", Input).value
        if self.problem:
            self._say(False, self.problem)
            return
        if not name or not value.strip():
            self._say(False, "type a name and a value first")
            return
        self.run_worker(self._set(name, value), group="secrets-act", exclusive=True)

    async def _set(self, name: str, value: str) -> None:
        from agent import secrets
        from agent.errors import CockpitError

        try:
            value = await asyncio.to_thread(_value_for, name, value)
            await asyncio.to_thread(secrets.set_secret, name, value)
        except CockpitError as exc:
            self._say(False, str(exc))
            return
        self.query_one("#value", Input).value = ""
        await self._tell_engines(name)
        self._say(True, f"stored {name}")
        await self._load()

    async def _tell_engines(self, name: str) -> None:
        """This engine redacts the new value at once; others through a control row."""
        engine = self.cockpit.engine
        if engine is None:
            return
        await engine.safety.refresh_secrets()
        await engine.store.add_command("secrets", None, {"name": name})

    @on(Button.Pressed, "#test")
    def action_test(self) -> None:
        name = self._chosen()
        if not name:
            self._say(False, "pick a secret to test")
            return
        put(self.query_one("#result", Static), f"[dim]testing {fmt.escape(name)}…[/]")
        self.run_worker(self._test(name), group="secrets-act", exclusive=True)

    async def _test(self, name: str) -> None:
        from agent.secret_checks import check_secret

        ok, message = await check_secret(name, self.cockpit.config)
        self._say(ok, message if message.startswith(name) else f"{name}: {message}")

    @on(Button.Pressed, "#remove")
    def action_remove(self) -> None:
        name = self._chosen()
        if self.problem or not name:
            self._say(False, self.problem or "pick a secret to remove")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._remove(name), group="secrets-act", exclusive=True)

        self.app.push_screen(Confirm(f"Remove {name} from the OS keyring? What uses it stops "
                                     "working until it is set again.", yes="Remove"), answered)

    async def _remove(self, name: str) -> None:
        from agent import secrets
        from agent.errors import CockpitError

        try:
            existed = await asyncio.to_thread(secrets.delete_secret, name)
        except CockpitError as exc:
            self._say(False, str(exc))
            return
        self._say(existed, f"removed {name}" if existed else f"{name} was not set")
        await self._load()


def _value_for(name: str, value: str) -> str:
    """What to store: for the BigQuery key, a path to its file is read; the key is checked
    (a key that cannot work is refused, not stored)."""
    from agent import secrets

    value = value.strip()
    if name == secrets.BIGQUERY_CREDENTIALS_NAME:
        from agent.errors import UsageError
        from agent.gcp import parse_service_account

        if not value.startswith("{"):
            path = Path(value).expanduser()
            try:
                value = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read {path}: "
                                 f"{getattr(exc, 'strerror', None) or 'not UTF-8'}") from None
        parse_service_account(value)
    return value


def open_secrets(app: Any) -> None:
    app.push_screen(SecretsDialog())
