"""The cockpit: ten panels as Textual modes over one in-process `agent.Engine`.

The engine opens in a worker after the first frame, so the window paints at once and
heavy imports never delay it. Live events reach the visible panel in coalesced batches
(at most ten a second), so a burst of thousands of events costs a handful of repaints.
What other processes change in the store shows within a second (cockpit/pulse.py), and a
request that starts waiting gets the operator's attention on any panel
(cockpit/attention.py).

Keys everywhere: the panel digits, `w` (the next request waiting), `?`/F1 (help), `q` (quit,
asking first when work is live), ctrl+x (stop), ctrl+p (palette). None of the printable
ones is a priority binding: a text field with focus types them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import Input
from textual.worker import Worker

from agent.events import LIVE_STATES

from . import hangup, pulse
from .attention import Attention
from .gc_pacing import GcPacer
from .keys import escape_digits_are_alt, key_for
from .messages import EngineEvents, EngineReady, StoreChanged
from .panels import BY_MODE, PANELS
from .textual_private import all_screens, no_update_delay, terminal_write, writer_queue
from .themes import load_themes

if TYPE_CHECKING:
    from agent.config import Config
    from agent.engine import Engine
    from agent.models.base import Model

    from .demo import DemoPlan

escape_digits_are_alt()  # ESC+digit is alt+digit: see cockpit/keys.py
TICK_S = 0.1
STARTUP_DELAY_S = 0.05
FLOOD = 100  # events per tick above which the drain slows down


class CockpitApp(App[None]):
    TITLE = "Liv Hana Cockpit"
    CSS_PATH = "app.tcss"
    MODES = {p.mode: p.factory() for p in PANELS}
    DEFAULT_MODE = "tasks"
    BINDINGS = [
        *(
            Binding(
                p.key, f"app.switch_mode('{p.mode}')", p.short, show=False, id=f"panel.{p.mode}"
            )
            for p in PANELS
        ),
        # Escape then a digit typed quickly reaches us as alt+digit (the terminal's escape
        # prefix): the same panel switch, and a priority one so a text field that still has
        # focus cannot type it. No text is ever typed with alt+digit.
        *(
            Binding(f"alt+{p.key}", f"app.panel_key('{p.mode}')", p.short, show=False,
                    priority=True)
            for p in PANELS
        ),
        # The emergency stop is ONE keystroke and a PRIORITY binding. Priority, so it fires
        # even while a text field, table or modal has focus (nothing may swallow it). One
        # keystroke with no confirm, because stopping is the safe direction: it is fully
        # undone by a deliberate re-arm, and every step was checkpointed, while a confirm
        # dialog costs seconds exactly when a runaway command is deleting things. ctrl+x is
        # not a printable key, so it cannot be typed by accident into a task, and it is
        # remappable (keymap id "emergency_stop").
        Binding("ctrl+x", "emergency_stop", "STOP", priority=True, id="emergency_stop"),
        Binding("ctrl+p", "command_palette", "Palette", show=False, id="palette"),
        Binding("question_mark,f1", "help", "Help", id="help"),
        Binding("q", "request_quit", "Quit", id="quit.q"),
        # ctrl+q quits from anywhere, a text field included; it asks first too.
        Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True, id="quit"),
        Binding("w", "next_waiting", "Next waiting request", show=False, id="next_waiting"),
    ]
    # Narrow terminals get stacked layouts (each panel's .tcss), short ones fewer rows.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]

    halted: reactive[bool] = reactive(False)
    engine_status: reactive[str] = reactive("starting…")
    live_count: reactive[int] = reactive(0)
    pending_count: reactive[int] = reactive(0)

    def __init__(
        self,
        config: Config,
        demo: DemoPlan | None = None,
        model_factory: Callable[[str], Model] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.demo = demo
        self.model_factory = model_factory
        self.engine: Engine | None = None
        self.workspace = "."  # default workspace for new tasks (the demo sets its own)
        self.loop_lag_ms = 0.0
        self._pending: list[dict[str, Any]] = []
        self._ticks = 0
        self._live: dict[str, str] = {}
        self._approvals: set[int] = set()
        self._stop_requested = False
        # Not `_closing`: that name is Textual's own (MessagePump), and setting it stops
        # the app's message loop.
        self._engine_closing = False
        self._quitting = False  # the quit question is on screen
        self.operator_acted = False  # a key or click since the cockpit opened
        self.attention = Attention(self)
        self._signature: tuple[Any, ...] | None = None
        self._pulsing = False
        self._connecting: Worker[None] | None = None
        self.gc_pacer = GcPacer()  # full GC pauses at quiet moments (cockpit/gc_pacing.py)
        self._themes = load_themes()
        for theme in self._themes:
            self.register_theme(theme)
        wanted = config.ui.theme
        self.theme = wanted if wanted in self.available_themes else "livhana-dark"
        if config.ui.keymap:
            self.set_keymap(config.ui.keymap)

    # -- lifecycle -------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._save_theme)
        self.set_interval(TICK_S, self._tick)
        self._lag_mark = time.monotonic()
        self.set_interval(0.25, self._measure_lag)
        self.gc_pacer.start()
        self.set_interval(1.0, self.gc_pacer.tick)
        self.set_interval(pulse.PULSE_S, self._pulse)
        if not self.is_headless:
            hangup.watch(asyncio.get_running_loop(), self.close_engine, lambda: writer_queue(self))

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown):
            self.gc_pacer.touched()
            self.operator_acted = True
        await super().on_event(event)

    def on_ready(self) -> None:
        # The first frame is on screen: now the engine (and the demo set-up) may start. A
        # short delay lets the terminal writer flush before imports and git take the CPU.
        self.set_timer(STARTUP_DELAY_S, self._start_engine)

    def _start_engine(self) -> None:
        if self._engine_closing:
            return
        self._connecting = self.run_worker(self._connect, group="engine")

    async def _connect(self) -> None:
        try:
            engine = await self._open_engine()
        except Exception as exc:  # the cockpit stays up and says why, in one line
            self.engine_status = "engine failed"
            self.notify(
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                title="Engine",
                severity="error",
                timeout=30,
            )
            return
        self.engine = engine
        self.halted = engine.stopped
        for task in await engine.list(states=list(LIVE_STATES), limit=1000):
            self._live[task["id"]] = task["state"]
        waiting = await engine.pending_approvals()
        self._approvals = {int(a["id"]) for a in waiting}
        self.attention.known(self._approvals)
        self._update_counts()
        if waiting:  # no bell for what already waited; a word, though
            jump = self.key_name("next_waiting", "w")
            self.notify(f"{len(waiting)} request(s) wait for you: [b]{jump}[/] to review",
                        title="⚑ Waiting", severity="warning", timeout=8)
        self.engine_status = "demo" if self.demo else "ready"
        self.run_worker(self._listen(engine), group="listen")
        from .notices import watch_runs  # toasts for the daemon's scheduled runs

        self.run_worker(watch_runs(self, engine), group="notices")
        if self.config.api.enabled:  # `[api] enabled = true`: this cockpit serves the API
            self.run_worker(self._serve_api(engine), group="api")
        if self._stop_requested:
            await engine.emergency_stop()
        self.screen_stack[0].post_message(EngineReady())
        # Start-up objects live as long as the app: keep them out of the collector's scans,
        # so a full collection never stalls a key press (gen-2 pauses were the p95 tail).
        gc.freeze()
        if self.demo is not None and not self._engine_closing:
            self.run_worker(
                self._guard(self.demo.seed(engine, self.workspace), "demo"), group="demo"
            )

    async def _guard(self, work: Awaitable[Any], what: str) -> None:
        """Run background work whose failure must not take the cockpit down."""
        try:
            await work
        except Exception as exc:
            self.notify(
                f"{what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                severity="error",
                timeout=15,
            )

    async def _open_engine(self) -> Engine:
        from agent.engine import Engine  # after the first frame

        config, factory = self.config, self.model_factory
        if self.demo is not None:
            self.engine_status = "preparing demo…"
            env = await asyncio.to_thread(self.demo.prepare)
            config, factory, self.workspace = env.config, env.model_factory, str(env.workspace)
            # The operator's UI settings (keys, bell) and its `[api]` carry over as a copy, and from now
            # on settings (a theme) go to the demo's own config, never the operator's:
            # the demo leaves nothing of the operator's changed.
            ui = self.config.ui
            env.config.ui = dataclasses.replace(ui, keymap=dict(ui.keymap), theme=self.theme)
            env.config.api = dataclasses.replace(self.config.api)  # served by the demo too
            self.config = env.config
        else:
            self.workspace = os.getcwd()
        return await Engine.open(config, role="tui", model_factory=factory)

    async def _listen(self, engine: Engine) -> None:
        async for event in engine.subscribe(None, transient=True):  # + live deltas
            self._pending.append(event)

    async def _serve_api(self, engine: Engine) -> None:
        """The HTTP API on this cockpit's engine (cockpit/api); what it says, it says here."""
        from .api.server import serve_api

        api = self.config.api

        def say(line: str) -> None:
            self.notify(line.removeprefix("livhana-cockpit: "), title="HTTP API", timeout=8)

        try:
            await serve_api(engine, self.config, host=api.host, port=api.port,
                            allow_remote=api.allow_remote, workspace=self.workspace, notice=say)
        except Exception as exc:  # the cockpit stays up without it, and says why
            self.notify(str(exc), title="HTTP API", severity="error", timeout=30)

    def _tick(self) -> None:
        """Drain the live events to the visible panel, and mirror the engine's stop flag.

        Ten times a second when calm; under a flood (hundreds of events per tick) only every
        third tick, so the panels repaint less and keys stay quick."""
        if self.engine is not None and self.engine.stopped != self.halted:
            self.halted = self.engine.stopped
        if not self._pending:
            return
        self._ticks += 1
        if len(self._pending) > FLOOD and self._ticks % 3:
            return
        batch, self._pending = self._pending, []
        ended: dict[str, str] = {}
        requested: list[dict[str, Any]] = []
        for event in batch:
            self._track(event, ended, requested)
        self._update_counts()
        self.screen_stack[0].post_message(EngineEvents(batch))
        if ended:
            self._close_questions(ended)
        if requested:
            self.attention.waiting(requested)

    def _track(self, event: dict[str, Any], ended: dict[str, str],
               requested: list[dict[str, Any]]) -> None:
        kind = event.get("type")
        if kind == "status":
            if event.get("state") in LIVE_STATES:
                self._live[event["task_id"]] = event["state"]
            else:
                self._live.pop(event["task_id"], None)
                ended[event["task_id"]] = str(event.get("state"))
        elif kind == "approval_requested" and event.get("approval_id") is not None:
            self._approvals.add(int(event["approval_id"]))
            requested.append(event)
        elif kind == "approval_decided" and event.get("approval_id") is not None:
            self._approvals.discard(int(event["approval_id"]))

    def _pulse(self) -> None:
        if self.engine is not None and not self._pulsing and not self._engine_closing:
            self._pulsing = True
            self.run_worker(self._check_store, group="pulse")

    async def _check_store(self) -> None:
        """The store moved (anyone's write): recount, announce new requests, and have the
        visible panel refresh."""
        try:
            engine = self.engine
            if engine is None:
                return
            try:
                mark = await pulse.signature(engine)
            except Exception:  # a busy or closing store: the next pulse asks again
                return
            if mark == self._signature:
                return
            first, self._signature = self._signature is None, mark
            live = await engine.list(states=list(LIVE_STATES), limit=1000)
            waiting = await engine.pending_approvals()
            still = {t["id"] for t in live}
            gone = {tid: await self._end_state(tid) for tid in self._live if tid not in still}
            self._live = {t["id"]: t["state"] for t in live}
            self._approvals = {int(a["id"]) for a in waiting}
            self._update_counts()
            if gone:
                self._close_questions(gone)
            self.attention.waiting(waiting)
            stack = self.screen_stack  # empty while the app closes: nobody to tell
            if not first and stack:
                stack[0].post_message(StoreChanged())
        finally:
            self._pulsing = False

    async def _end_state(self, task_id: str) -> str:
        """How a task that left the live list ended, as its question's notice says it (the
        store can show the end before the live events do)."""
        assert self.engine is not None
        task = await self.engine.get(task_id)
        return str(task["state"]) if task is not None else "ended"

    def _close_questions(self, ended: dict[str, str]) -> None:
        """A confirm dialog about a task that just ended closes (on every panel's stack)."""
        from .widgets.confirm import Confirm

        for screen in all_screens(self):
            if isinstance(screen, Confirm) and screen.task_id in ended:
                screen.task_ended(ended[screen.task_id])

    def _update_counts(self) -> None:
        self.live_count = len(self._live)
        self.pending_count = len(self._approvals)

    def _measure_lag(self) -> None:
        now = time.monotonic()
        lag = max(0.0, (now - self._lag_mark - 0.25) * 1000)
        self.loop_lag_ms = lag if lag > self.loop_lag_ms else self.loop_lag_ms * 0.8 + lag * 0.2
        self._lag_mark = now

    async def on_unmount(self) -> None:
        self.gc_pacer.stop()
        await self.close_engine()

    async def close_engine(self) -> None:
        if self._engine_closing:
            return
        self._engine_closing = True
        if self._connecting is not None:  # an engine still opening is closed too, not leaked
            with contextlib.suppress(Exception):
                await self._connecting.wait()
        for worker in self.workers.cancel_group(self, "api"):  # its streams end first
            with contextlib.suppress(Exception):
                await worker.wait()
        engine, self.engine = self.engine, None
        if engine is not None:
            await engine.close()
        if self.demo is not None:
            self.demo.cleanup()

    # -- actions ---------------------------------------------------------------------------
    async def action_emergency_stop(self) -> None:
        self.halted = True  # show it at once; the engine call follows
        if self.engine is None:
            self._stop_requested = True
        else:
            await self.engine.emergency_stop(by="operator")
        self.notify(
            "Emergency stop engaged: running work killed, new work held.",
            title="STOP",
            severity="error",
            timeout=8,
        )

    async def action_rearm(self) -> None:
        self._stop_requested = False
        if self.engine is not None:
            await self.engine.rearm(by="operator")
        self.halted = False
        self.notify("Re-armed: work may start again.")

    def waiting_ids(self) -> set[int]:
        """The requests waiting for the operator now."""
        return set(self._approvals)

    def key_name(self, binding_id: str, default: str) -> str:
        """How the key bound to `binding_id` is written (remaps applied)."""
        return key_for(self, binding_id, default)

    def write_terminal(self, sequence: str) -> None:
        """Raw bytes for the terminal (a desktop notification); nothing when headless."""
        if not self.is_headless:
            terminal_write(self, sequence)

    async def action_next_waiting(self) -> None:
        """The next request waiting for the operator, from any panel (cycling)."""
        if isinstance(self.screen, ModalScreen):
            return
        if not self._approvals:
            self.notify("No request waits for you.")
            return
        self.switch_mode("approvals")
        screen = self.screen
        if hasattr(screen, "next_pending"):
            screen.next_pending()

    def action_help(self) -> None:
        from .help import help_sections
        from .widgets.help_overlay import HelpOverlay

        if isinstance(self.screen, ModalScreen):
            return
        screen = self.screen
        title = BY_MODE[screen.MODE].title if hasattr(screen, "MODE") else self.TITLE
        self.push_screen(HelpOverlay(title, help_sections(self, screen)))

    async def action_request_quit(self) -> None:
        """Quit; with live tasks or waiting requests, ask first and say what happens."""
        from .help import quit_question
        from .widgets.confirm import Confirm

        if self._quitting:
            return
        engine = self.engine
        if engine is None or self._engine_closing:
            self.exit()
            return
        live = await engine.list(states=list(LIVE_STATES), limit=1000)
        waiting = await engine.pending_approvals()
        if not live and not waiting:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            self._quitting = False
            if yes:
                self.exit()

        self._quitting = True
        self.push_screen(Confirm(quit_question(live, waiting, engine.engine_id), yes="Quit"),
                         answered)

    def action_panel_key(self, mode: str) -> None:
        """alt+digit: what Escape (leave the field) then the digit would have done."""
        if isinstance(self.screen, ModalScreen):  # a dialog is answered first
            return
        if isinstance(self.screen.focused, Input):  # the only text fields here
            self.screen.set_focus(None)
        self.switch_mode(mode)

    def action_secrets(self) -> None:
        """The secrets dialog (cockpit/screens/secrets.py), from any panel."""
        from .screens.secrets import SecretsDialog

        if not isinstance(self.screen, SecretsDialog):
            self.push_screen(SecretsDialog())

    def action_set_theme(self, name: str) -> None:
        self.theme = name

    def _save_theme(self, theme: Any) -> None:
        if self.config.ui.theme == theme.name or self.config.config_path is None:
            return
        if self.demo is not None and self.engine is None:
            return  # the demo saves in its own data dir, known once it is prepared
        self.config.ui.theme = theme.name
        from agent.config import save_ui_settings

        saving = asyncio.to_thread(save_ui_settings, self.config)
        self.run_worker(self._guard(saving, "theme not saved"), group="settings")

    def switch_mode(self, mode: str) -> Any:
        # Textual masks a mode switch with a 50 ms update delay; our panels are built once
        # and kept, so there is nothing to mask, and a panel key should repaint at once.
        with no_update_delay(self):
            return super().switch_mode(mode)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # One way to change the theme: ours ("Theme: <name>", the cockpit's themes, saved in
        # config), not Textual's "Theme" picker as well (a second path, offering themes
        # the panels' colours were not made for).
        yield from (c for c in super().get_system_commands(screen) if c.title != "Theme")
        for p in PANELS:
            yield SystemCommand(
                f"Panel {p.key}: {p.title}",
                f"Switch to {p.title}",
                lambda mode=p.mode: self.switch_mode(mode),
            )
        yield SystemCommand(
            "Emergency stop", "Kill all running work and hold new work", self.action_emergency_stop
        )
        yield SystemCommand("Re-arm", "Release the emergency stop", self.action_rearm)
        yield SystemCommand(
            "Secrets", "Set, test and remove keys and credentials (OS keyring)",
            self.action_secrets,
        )
        for theme in self._themes:
            yield SystemCommand(
                f"Theme: {theme.name}",
                "Switch theme (saved in config)",
                lambda name=theme.name: self.action_set_theme(name),
            )


def run_app(config: Config, demo: bool = False) -> int:
    """Entry point used by `livhana-cockpit` (and `--demo`)."""
    import sys

    plan = None
    if demo:
        from .demo import DemoPlan

        plan = DemoPlan()
        data = plan.reserve() / "data"
        print(f"demo data dir: {data}\n  look at it from another shell: "
              f"livhana-cockpit --data-dir {data} history", file=sys.stderr, flush=True)
    try:
        CockpitApp(config, demo=plan).run()
    finally:
        if plan is not None:
            print(f"demo data dir {data} removed (the demo keeps nothing; your own "
                  f"config and store were not touched)", file=sys.stderr, flush=True)
    return 0
