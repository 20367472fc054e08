"""Getting the operator's attention when a request starts waiting for them.

A toast on whatever panel is shown, the terminal bell (`[ui] bell`), and a desktop
notification (`[ui] desktop_notify`) sent as the escape sequence the terminal understands:
OSC 777 (`notify;title;body`: foot, WezTerm, Ghostty, rxvt, VTE terminals, Windows
Terminal) or OSC 9 (iTerm2, kitty). A terminal not known to show them gets none (an unknown
sequence is noise at best). Inside tmux the sequence is wrapped for passthrough, which
tmux forwards when `allow-passthrough` is on.

Several requests arriving together make one toast and one bell, and a request is announced
once, whichever way it was seen first (a live event, or the store changing under us)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import fmt

if TYPE_CHECKING:
    from textual.timer import Timer

    from .app import CockpitApp

SETTLE_S = 0.4  # a request decided within this long was never waiting for anyone
OSC9 = "osc9"
OSC777 = "osc777"


def notify_protocol(env: Mapping[str, str] | None = None) -> str | None:
    """Which desktop-notification sequence this terminal shows, if any."""
    env = os.environ if env is None else env
    program = env.get("TERM_PROGRAM", "")
    lc_terminal = env.get("LC_TERMINAL", "")  # iTerm2 sets it, and it survives ssh/tmux
    term = env.get("TERM", "")
    if program == "iTerm.app" or lc_terminal == "iTerm2" or env.get("KITTY_WINDOW_ID") \
            or term == "xterm-kitty":
        return OSC9
    if (program in ("WezTerm", "ghostty") or env.get("WEZTERM_PANE")
            or env.get("GHOSTTY_RESOURCES_DIR") or term.startswith(("foot", "rxvt"))
            or env.get("VTE_VERSION") or env.get("WT_SESSION")):
        return OSC777
    return None


def _clean(text: str) -> str:
    """No control characters (they would end the sequence early) and no ';' in a title."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def notify_sequence(title: str, body: str, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    protocol = notify_protocol(env)
    if protocol is None:
        return None
    title, body = _clean(title), _clean(body)
    if protocol == OSC9:
        sequence = f"\x1b]9;{title}: {body}\x07"
    else:
        sequence = f"\x1b]777;notify;{title.replace(';', ',')};{body}\x07"
    if env.get("TMUX"):
        sequence = "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return sequence


def describe(request: Mapping[str, Any]) -> str:
    """'#12 command (risk high): rm -rf build'"""
    summary = fmt.short(str(request.get("summary") or ""), 80)
    risk = request.get("risk")
    head = f"#{request.get('id') or request.get('approval_id')} {request.get('kind', '')}"
    return f"{head}{f' (risk {risk})' if risk else ''}: {summary}"


class Attention:
    def __init__(self, app: CockpitApp) -> None:
        self.app = app
        self.announced: set[int] = set()
        self.rung = 0  # bells rung (tests read it; a headless app has no terminal)
        self.sent: list[str] = []  # desktop notifications sent
        self._candidates: list[Mapping[str, Any]] = []
        self._timer: Timer | None = None

    def known(self, ids: Iterable[int]) -> None:
        """Requests that already waited when the cockpit opened: listed, not announced."""
        self.announced.update(ids)

    def waiting(self, requests: list[Mapping[str, Any]]) -> None:
        """Requests seen waiting: announce the new ones that still wait a moment later (a
        rule, or an auto-approving task, decides some at once: they never waited)."""
        new = []
        for request in requests:
            rid = request.get("id", request.get("approval_id"))
            if rid is not None and int(rid) not in self.announced:
                self.announced.add(int(rid))
                new.append(request)
        if new:
            self._candidates.extend(new)
            if self._timer is None:
                self._timer = self.app.set_timer(SETTLE_S, self._settled)

    def _settled(self) -> None:
        self._timer = None
        still = self.app.waiting_ids()
        new = [r for r in self._candidates
               if int(r.get("id", r.get("approval_id")) or 0) in still]
        self._candidates = []
        if new:
            self.announce(new)

    def announce(self, requests: list[Mapping[str, Any]]) -> None:
        app = self.app
        jump = app.key_name("next_waiting", "w")
        if len(requests) == 1:
            what = describe(requests[0])
            message = f"{fmt.escape(what)}\n[b]{jump}[/] to review it"
        else:
            what = f"{len(requests)} requests wait for you"
            message = f"{what}\n[b]{jump}[/] to review them"
        app.notify(message, title="⚑ Approval needed", severity="warning", timeout=12)
        ui = app.config.ui
        if getattr(ui, "bell", True):
            self.rung += 1
            app.bell()
        if getattr(ui, "desktop_notify", True):
            sequence = notify_sequence("Liv Hana: approval needed", what)
            if sequence is not None:
                self.sent.append(sequence)
                app.write_terminal(sequence)
