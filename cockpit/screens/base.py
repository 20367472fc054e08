"""The base of every panel: nav bar, halt banner, filter bar, footer, the data plumbing and
the keys every panel shares (`/` filter, Enter drills into the highlighted row, `?` help).

Data flows one way: a panel asks the engine in a worker (`refresh_data`), never on the
event loop's critical path, and refreshes never overlap (Dolphie's rule): a request that
arrives while one runs just marks the panel dirty and one more pass follows.

Live events reach only the visible panel (keys stay fast however many tasks stream), so a
panel coming back into view refreshes from the store and catches up (`catch_up`) on the
events it missed: what it shows is right when you return to it. What others change in
the store (the CLI, a daemon, another cockpit) reaches the visible panel within a second:
the app notices the store changed (`StoreChanged`) and the panel refreshes.

Keys pressed before the panel body is mounted are held and replayed once it is, so a
letter typed while the cockpit opens can never fire a hotkey meant for later.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.lazy import Lazy
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Input
from textual.worker import Worker

from ..messages import EngineEvents, EngineReady, StoreChanged
from ..panels import BY_MODE
from ..widgets.confirm import Confirm
from ..widgets.event_log import EventLog, full_text
from ..widgets.filter_bar import FilterBar
from ..widgets.halt_banner import HaltBanner
from ..widgets.key_bar import KeyBar
from ..widgets.keyed_table import KeyedTable
from ..widgets.nav_bar import NavBar

if TYPE_CHECKING:
    from agent.engine import Engine

    from ..app import CockpitApp

log = logging.getLogger(__name__)


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
    # What Enter on a row of this panel's tables does, for the help overlay (None: nothing).
    ENTER: ClassVar[str | None] = None
    # Fields drawn without borders on a narrow or short terminal (a CSS selector).
    COMPACT: ClassVar[str] = ""
    BINDINGS = [
        Binding("escape", "leave_input", "Leave field", show=False),
        Binding("slash", "filter", "Filter", id="filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.title = BY_MODE[self.MODE].title
        self._busy = False
        self._again = False
        self._poll: Timer | None = None
        self._ready = False  # the panel body is mounted (it comes just after the first frame)
        self._last_refresh = 0.0
        self._deferred: Timer | None = None
        self._early_keys: list[events.Key] = []  # typed before the body was mounted

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
        yield FilterBar()
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
        self.fit_fields()
        self.body_mounted()
        self.refresh_bindings()
        self.request_refresh()
        early, self._early_keys = self._early_keys, []
        if early:
            self.call_after_refresh(self.replay_keys, early)

    def replay_keys(self, keys: list[events.Key]) -> None:
        """Keys typed before the body existed: printable ones go to a text field when the
        panel puts one in focus; none of them fires a hotkey."""
        field = self.focused if isinstance(self.focused, Input) else None
        if field is not None:
            field.insert_text_at_cursor("".join(k.character or "" for k in keys if k.is_printable))

    def on_key(self, event: events.Key) -> None:
        if not self._ready and event.is_printable:
            self._early_keys.append(event)
            event.stop()
            event.prevent_default()

    def body_mounted(self) -> None:
        """Override to set up widgets of the panel body once they exist."""

    def on_resize(self, _event: events.Resize) -> None:
        self.fit_fields()

    def fit_fields(self) -> None:
        """Borderless fields on a narrow or short terminal: the rows go to the data."""
        if not self.COMPACT or not self._ready:
            return
        compact = self.has_class("-narrow") or self.has_class("-short")
        for widget in self.query(self.COMPACT):
            if hasattr(widget, "compact"):
                widget.compact = compact

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

    def on_store_changed(self, _message: StoreChanged) -> None:
        """Someone changed the store (this engine, the CLI, a daemon): show it."""
        self.request_refresh()
        if self._ready:
            self.catch_up()

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
    def run_worker(self, work: Any, *args: Any, **kwargs: Any) -> Worker[Any]:
        """A panel's worker never takes the cockpit down: one that fails says so in one line,
        and one that finds its widgets gone (the panel torn down while it read the store,
        as on quit) just ends. Textual's default ends the app, with a traceback."""

        async def guarded() -> Any:
            try:
                result = work() if callable(work) else work
                return await result if inspect.isawaitable(result) else result
            except NoMatches:
                log.debug("panel %s: a worker outlived its widgets", self.MODE, exc_info=True)
            except Exception as exc:
                log.exception("panel %s: worker failed", self.MODE)
                if self.is_attached:
                    self.notify(_one_line(exc), severity="error", timeout=6)
            return None

        return super().run_worker(guarded, *args, **kwargs)

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

    # -- drilling in ------------------------------------------------------------------------
    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is not None and isinstance(event.data_table, KeyedTable):
            self.drill(event.data_table, str(key))

    def drill(self, table: KeyedTable, key: str) -> None:
        """Enter on a row: override to open what the row stands for."""

    def open_task(self, task_id: str) -> None:
        """Task Execution, on this task (not on the one it showed before)."""
        self.app.switch_mode("tasks")
        screen = self.app.screen
        if hasattr(screen, "show_task"):
            screen.show_task(task_id)

    @on(EventLog.Open)
    def _open_event(self, message: EventLog.Open) -> None:
        from ..widgets.detail_view import DetailView

        title, body = full_text(message.event, list(message.log.events))
        task = message.event.get("task_id") or ""
        self.app.push_screen(DetailView(f"{title} · task {str(task)[:8]}", body))

    # -- keys ------------------------------------------------------------------------------
    def action_leave_input(self) -> None:
        self.set_focus(None)

    def filter_target(self) -> KeyedTable | None:
        """The table `/` filters: the focused one, else the first shown."""
        if isinstance(self.focused, KeyedTable):
            return self.focused
        return next((t for t in self.query(KeyedTable) if t.display and t.cursor_type != "none"),
                    None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter":  # offered where there is something to filter
            return callable(getattr(self, "action_search", None)) or (
                self._ready and self.filter_target() is not None)
        return True

    def action_filter(self) -> None:
        search = getattr(self, "action_search", None)
        if callable(search):  # a panel whose own search asks the store (History, Learnings)
            search()
            return
        table = self.filter_target()
        if table is None:
            self.notify("Nothing to filter on this panel.", severity="warning")
            return
        self.query_one(FilterBar).open(table)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def rows_by_id(items: Iterable[dict[str, Any]], key: str = "id") -> dict[str, dict[str, Any]]:
    return {str(item[key]): item for item in items}
