"""Guards for the private APIs of other libraries the cockpit relies on. Each test fails
loudly, naming what moved, when a release of Textual (or aiosqlite) changes it; the uses
themselves live in cockpit/textual_private.py (and agent/store/opening.py)."""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import re
import threading
from pathlib import Path
from queue import Queue
from typing import Any

import aiosqlite
import textual
from textual import _ansi_sequences
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from cockpit import textual_private as tp

ROOT = Path(__file__).resolve().parent.parent
TESTED = "8.2"  # the Textual line these guards were written against (pyproject pins <9)


def why(what: str) -> str:
    return f"Textual {textual.__version__} changed {what} (tested on {TESTED}.x): see " \
        "cockpit/textual_private.py"  # fmt: skip


class Keyed(App[None]):
    BINDINGS = [Binding("ctrl+x", "stop", "Stop", id="stop"), Binding("n", "new", id="new")]


def test_bindings_with_keymap_shows_a_remapped_key() -> None:
    app = Keyed()
    app.set_keymap({"stop": "ctrl+backslash"})
    keys = {b.id: key for key, bs in tp.bindings_with_keymap(app).key_to_bindings.items()
            for b in bs}  # fmt: skip
    assert keys.get("stop") == "ctrl+backslash", why("DOMNode._bindings / App._keymap")
    assert keys.get("new") == "n", why("DOMNode._bindings")


def test_forget_escape_sequences_edits_the_parsers_table() -> None:
    table = getattr(_ansi_sequences, "ANSI_SEQUENCES_KEYS", None)
    assert isinstance(table, dict), why("_ansi_sequences.ANSI_SEQUENCES_KEYS")
    assert "\x1b[A" in table, why("the escape-sequence table's keys")  # the up arrow
    table["\x1b~test"] = ("test",)
    tp.forget_escape_sequences(["\x1b~test"])
    assert "\x1b~test" not in table


async def test_all_screens_sees_every_modes_stack() -> None:
    class One(Screen[None]):
        pass

    class Two(Screen[None]):
        pass

    class Modal(Screen[None]):
        pass

    class Modes(App[None]):
        MODES = {"one": One, "two": Two}

    app = Modes()
    async with app.run_test() as pilot:
        await app.switch_mode("one")
        await app.push_screen(Modal())
        await app.switch_mode("two")
        await pilot.pause()
        kinds = {type(s).__name__ for s in tp.all_screens(app)}
    assert {"One", "Modal", "Two"} <= kinds, why("App._screen_stacks")


async def test_no_update_delay_silences_delay_update_and_restores_it() -> None:
    assert callable(getattr(App, "delay_update", None)), why("App.delay_update")
    assert list(inspect.signature(App.delay_update).parameters) == ["self", "delay"], \
        why("App.delay_update's signature")  # fmt: skip
    app = App[None]()
    async with app.run_test():
        original = app.delay_update
        with tp.no_update_delay(app):
            assert app.delay_update is not original
            app.delay_update(0.05)  # does nothing, raises nothing
        assert app.delay_update == original


async def test_writer_queue_is_the_drivers_writer_queue() -> None:
    app = App[None]()
    async with app.run_test():
        assert getattr(app, "_driver", None) is not None, why("App._driver")
        # The test driver writes in-process (no writer thread): no queue, nothing to drain.
        assert tp.writer_queue(app) is None
    # The real terminal's driver: its writer thread holds a queue.
    from textual.drivers._writer_thread import WriterThread

    writer = WriterThread(io.StringIO())  # never started
    assert isinstance(getattr(writer, "_queue", None), Queue), why("WriterThread._queue")
    source = inspect.getsource(__import__("textual.drivers.linux_driver", fromlist=["x"]))
    assert "self._writer_thread" in source, why("LinuxDriver._writer_thread")


async def test_relayout_columns_remeasures_a_table() -> None:
    class Table(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable()

    app = Table()
    async with app.run_test() as pilot:
        table = app.query_one(DataTable)
        table.add_column("name", key="name", width=4)
        table.add_row("a long cell")
        await pilot.pause()
        assert hasattr(table, "_require_update_dimensions"), why("DataTable's relayout flag")
        assert callable(getattr(table, "_clear_caches", None)), why("DataTable._clear_caches")
        table.columns["name"].width = 12  # type: ignore[index]
        tp.relayout_columns(table)
        table.refresh()
        await pilot.pause()
        assert table.virtual_size.width >= 12, why("DataTable's relayout")


def test_active_app_is_the_running_apps_context_variable() -> None:
    app = App[None]()
    token = tp.active_app.set(app)
    try:
        assert tp.active_app.get() is app, why("textual._context.active_app")
    finally:
        tp.active_app.reset(token)


def test_no_cockpit_class_takes_a_name_its_textual_base_uses() -> None:
    """A `self._x` of ours that a Textual base class also uses overrides its state (the
    app's own `_closing` once stopped Textual's message loop)."""
    import cockpit.app  # noqa: F401  (loads every screen and widget)

    clashes = []
    for module_path in sorted((ROOT / "cockpit").rglob("*.py")):
        if module_path.name == "__main__.py":
            continue
        tree = ast.parse(module_path.read_text(encoding="utf-8"))
        module = _module(module_path)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef) or module is None:
                continue
            cls = getattr(module, node.name, None)
            if not isinstance(cls, type):
                continue
            ours = {a.attr for a in ast.walk(node) if isinstance(a, ast.Attribute)
                    and isinstance(a.value, ast.Name) and a.value.id == "self"
                    and a.attr.startswith("_") and not a.attr.startswith("__")}  # fmt: skip
            theirs = _textual_names(cls)
            clashes += [f"{module_path.name}: {node.name}.{n}" for n in sorted(ours & theirs)]
    assert clashes == [], "renamed ours, or Textual's state is overwritten"


def _module(path: Path) -> Any:
    import importlib

    name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def _textual_names(cls: type) -> set[str]:
    names: set[str] = set()
    for base in cls.__mro__:
        if not base.__module__.startswith("textual"):
            continue
        names |= {n for n in vars(base) if n.startswith("_") and not n.startswith("__")}
        with contextlib.suppress(OSError, TypeError):  # no source to read: its vars only
            names |= set(re.findall(r"self\.(_[a-z]\w*)", inspect.getsource(base)))
    return names


async def test_aiosqlite_connection_has_a_thread_to_make_a_daemon() -> None:
    """agent/store/opening.py makes aiosqlite's worker thread a daemon before it starts."""
    pending = aiosqlite.connect(":memory:")
    thread = getattr(pending, "_thread", None)
    assert isinstance(thread, threading.Thread) and not thread.is_alive(), \
        f"aiosqlite {aiosqlite.__version__} changed Connection._thread"  # fmt: skip
    thread.daemon = True
    db = await pending
    await db.close()


def test_static_is_weakly_referenceable() -> None:
    """cockpit/widgets `put` remembers what each Static shows in a WeakKeyDictionary."""
    import weakref

    weakref.ref(Static())
