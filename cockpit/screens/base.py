"""The base of every panel: nav bar, halt banner, footer, and the data plumbing.

Data flows one way: a panel asks the engine in a worker (`refresh_data`), never on the
event loop's critical path, and refreshes never overlap (Dolphie's rule): a request that
arrives while one runs just marks the panel dirty and one more pass follows.

Live events reach only the visible panel (keys stay fast however many tasks stream), so a
panel coming back into view refreshes from the store and catches up (`catch_up`) on the
events it missed: what it shows is right when you return to it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.lazy import Lazy
from textual.screen import Screen
from textual.timer import Timer

from ..messages import EngineEvents, EngineReady
from ..panels import BY_MODE
from ..widgets.confirm import Confirm
from ..widgets.halt_banner import HaltBanner
from ..widgets.key_bar import KeyBar
from ..widgets.nav_bar import NavBar

if TYPE_CHECKING:
    from agent.engine import Engine

    from ..app import CockpitApp


class PanelBody(Vertical):
    """The panel's own widgets, mounted just after the first frame (see `PanelScreen`)."""

    DEFAULT_CSS = "PanelBody { height: 1fr; }"

    def __init__(self, build: Callable[[], ComposeResult]) -> None:
        super().__init__()
        self._build = build

    def compose(self) -> ComposeResult:
        yield from self._build()

    def on_mount(self) -> None:
        screen = self.screen
        if isinstance(screen, PanelScreen):
            screen.body_ready()


class PanelScreen(Screen[None]):
    """A panel: nav bar, halt banner and footer paint in the first frame; the body (with
    its heavier widgets: inputs, tables, logs) is mounted lazily right after, so the cockpit
    shows up at once. Refreshes wait for the body."""

    MODE: ClassVar[str] = ""
    # Re-query the engine this often while the panel is visible (None: on events only).
    POLL_S: ClassVar[float | None] = None
    # Event types that make this panel refresh.
    WATCH: ClassVar[frozenset[str]] = frozenset()
    # At most one refresh per this many seconds, however fast events come.
    MIN_REFRESH_S: ClassVar[float] = 0.25
    # Focus a table, never a text field, on arrival: digits switch panels until you type.
    AUTO_FOCUS = "KeyedTable"
    BINDINGS = [Binding("escape", "leave_input", "Leave field", show=False)]

    def __init__(self) -> None:
        super().__init__()
        self.title = BY_MODE[self.MODE].title
        self._busy = False
        self._again = False
        self._poll: Timer | None = None
        self._ready = False  # the panel body is mounted (it comes just after the first frame)
        self._last_refresh = 0.0
        self._deferred: Timer | None = None

    @property
    def cockpit(self) -> CockpitApp:
        return self.app  # type: ignore[return-value]

    @property
    def engine(self) -> Engine | None:
        return self.cockpit.engine

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield HaltBanner()
        yield Lazy(PanelBody(self.compose_panel))
        yield KeyBar()

    def compose_panel(self) -> ComposeResult:
        yield from ()

    # -- lifecycle -------------------------------------------------------------------------
    def on_mount(self) -> None:
        if self.POLL_S:
            self._poll = self.set_interval(self.POLL_S, self.request_refresh, pause=True)
        # Cells carry colours of the theme they were formatted in (fmt): re-format on a switch.
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.request_refresh())

    def body_ready(self) -> None:
        self._ready = True
        if self.focused is None and self.AUTO_FOCUS:  # the screen's auto focus ran too early
            for widget in self.query(self.AUTO_FOCUS):
                if widget.focusable:
                    widget.focus()
                    break
        self.body_mounted()
        self.request_refresh()

    def body_mounted(self) -> None:
        """Override to set up widgets of the panel body once they exist."""

    def on_screen_resume(self) -> None:
        self.request_refresh()
        if self._ready and self.engine is not None:
            # After the switch is painted: the key's repaint never waits for the backlog.
            self.call_after_refresh(self.catch_up)
        if self._poll:
            self._poll.resume()

    def on_screen_suspend(self) -> None:
        if self._poll:
            self._poll.pause()

    def on_engine_ready(self, _message: EngineReady) -> None:
        self.request_refresh()

    def on_engine_events(self, message: EngineEvents) -> None:
        if self.WATCH and any(ev.get("type") in self.WATCH for ev in message.events):
            self.request_refresh()
        if self._ready:  # the body (and its event views) is mounted
            self.handle_events(message.events)

    def handle_events(self, events: list[dict[str, Any]]) -> None:
        """Override for panels that render events directly."""

    def catch_up(self) -> None:
        """Override for panels that render events: load, from the store, those that came
        while the panel was hidden (they were not sent to it)."""

    # -- data ------------------------------------------------------------------------------
    def request_refresh(self) -> None:
        if self.engine is None or not self._ready or not self.is_attached:
            return
        if self._busy:
            self._again = True
            return
        wait = self._last_refresh + self.MIN_REFRESH_S - time.monotonic()
        if wait > 0:
            if self._deferred is None:
                self._deferred = self.set_timer(wait, self._deferred_refresh)
            return
        self._busy = True
        self.run_worker(self._refresh_loop, group="refresh")

    def _deferred_refresh(self) -> None:
        self._deferred = None
        self.request_refresh()

    async def _refresh_loop(self) -> None:
        try:
            while self.engine is not None:
                self._again = False
                self._last_refresh = time.monotonic()
                try:
                    await self.refresh_data(self.engine)
                except Exception as exc:  # one line for the operator, the panel stays usable
                    self.notify(_one_line(exc), severity="error", timeout=6)
                if not self._again:
                    break
        finally:
            self._busy = False

    async def refresh_data(self, engine: Engine) -> None:
        """Query the engine and update widgets. Runs in a worker on the app's loop."""

    def act(self, call: Callable[[Engine], Awaitable[Any]], done: str | None = None,
            then: Callable[[Any], None] | None = None) -> None:
        """Run one engine call in a worker; errors become a one-line notification."""
        engine = self.engine
        if engine is None:
            self.notify("the engine is still starting", severity="warning")
            return

        async def run() -> None:
            try:
                result = await call(engine)
            except Exception as exc:
                self.notify(_one_line(exc), severity="error", timeout=6)
                return
            if done:
                self.notify(done)
            if then:
                then(result)
            self.request_refresh()

        self.run_worker(run, group="actions")

    def confirm_cancel(self, task_id: str, done: str) -> None:
        """Cancel `task_id` after a confirm (which closes by itself if the task ends first)."""

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(lambda e: e.cancel(task_id), done=done)

        self.app.push_screen(Confirm(f"Cancel task {task_id}? Its running command is killed.",
                                     yes="Cancel task", task_id=task_id), answered)

    # -- keys ------------------------------------------------------------------------------
    def action_leave_input(self) -> None:
        self.set_focus(None)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def rows_by_id(items: Iterable[dict[str, Any]], key: str = "id") -> dict[str, dict[str, Any]]:
    return {str(item[key]): item for item in items}
