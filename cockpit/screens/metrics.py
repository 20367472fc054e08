"""0 · Charts & Metrics: tasks per day, success-rate trend, average time per task (working,
and waiting for the operator, apart), cost per day and learnings accumulated, over the
last two weeks (plotext via textual-plotext).

A day without finished tasks has no success rate or duration: the line breaks there
instead of diving to zero. Each y axis fits its data, so cents of cost stay readable."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.color import Color
from textual.containers import Grid
from textual.widgets import Static
from textual_plotext import PlotextPlot

from .. import fmt
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

DAYS = 14
# chart id -> (title, metrics key, kind, scale, fixed top of the y axis or None to fit)
CHARTS: dict[str, tuple[str, str, str, float, float | None]] = {
    "tasks": ("Tasks per day", "tasks_per_day", "bar", 1.0, None),
    "success": ("Success rate %", "success_rate", "line", 100.0, 100.0),
    "duration": ("Avg working / waiting time (s)", "avg_working_s", "line", 1.0, None),
    "cost": ("Cost per day ($)", "cost_per_day", "bar", 1.0, None),
    "learnings": ("Learnings accumulated", "learnings_total", "line", 1.0, None),
}
# A shorter title where the long one does not fit (plotext drops a title wider than it).
SHORT = {"duration": "Working / waiting (s)"}
# A second line on a chart: chart id -> (legend of the first, (legend, metrics key, style)).
SECOND = {"duration": ("working", ("waiting for you", "avg_waiting_s", "$text-warning"))}
# Totals box: (state key, label, tone)
ENDINGS = (("succeeded", "succeeded", "ok"), ("failed", "failed", "bad"),
           ("cancelled", "cancelled", "alt"), ("rolled_back", "rolled back", "accent"),
           ("interrupted", "interrupted", "bad"))


def day_labels(n: int) -> list[str]:
    """Relative day labels ('-13d' … 'today'): readable, and the same every day."""
    return [f"-{n - 1 - i}d" if i < n - 1 else "today" for i in range(n)]


def day_ticks(n: int, canvas: int) -> list[int]:
    """Which of the `n` days (1-based) get a label on a plot area `canvas` columns wide:
    every 1st, 2nd, 4th or 7th day counted back from today, as dense as fits. Labels that
    could touch must not be drawn at all: plotext drops one of two clashing labels in an
    order that changes from process to process (it dedupes ticks through a `set`)."""
    widest = max((len(label) for label in day_labels(n)), default=0)
    for stride in (1, 2, 4, 7):
        if n <= 1 or stride * canvas / n >= widest + 2:
            return [x for x in range(1, n + 1) if (n - x) % stride == 0]
    return [n]


class DayChart(PlotextPlot):
    """A chart over the last days whose x labels are chosen for the width it is drawn at
    (a resized terminal gets fewer or more of them, never two that clash)."""

    days = 0
    y_label_width = 0
    titles: tuple[str, ...] = ()  # the first that fits the width is shown

    def render(self) -> Any:
        if self.titles:
            room = self.size.width - 4  # what plotext leaves a title
            self.plt.title(next((t for t in self.titles if len(t) <= room), self.titles[-1]))
        if self.days:
            # the y labels, their axis and the right-hand axis take the rest of the width
            ticks = day_ticks(self.days, max(1, self.size.width - self.y_label_width - 3))
            labels = day_labels(self.days)
            self.plt.xticks(ticks, [labels[x - 1] for x in ticks])
        return super().render()


def runs(values: list[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive days that have a value, as (x, y) runs; a None day breaks the line."""
    out: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for x, y in enumerate(values, start=1):
        if y is None:
            if current:
                out.append(current)
            current = []
        else:
            current.append((x, y))
    if current:
        out.append(current)
    return out


def y_ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least `top` (1, 2 or 5 times a power of ten apart)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def tick_label(value: float, step: float, money: bool) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    if money and step < 1:
        decimals = max(decimals, 2)  # $0.10, not $0.1
    text = f"{value:.{decimals}f}"
    return f"${text}" if money else text


def _rgb(style: str) -> tuple[int, int, int] | None:
    try:
        return Color.parse(fmt.resolve(style)).rgb
    except Exception:
        return None


def draw(plot: DayChart, title: str, values: list[Any], kind: str, scale: float,
         fixed_top: float | None = None, money: bool = False,
         second: tuple[str, str, list[Any], str] | None = None, short: str = "") -> None:
    """One series (bars or a line); `second` = (legend of the first, legend, values,
    style) adds a second line, each labelled."""
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    ys = [None if v is None else v * scale for v in values]
    xs = list(range(1, len(values) + 1))
    colour = _rgb("$text-primary")
    plot.titles = (title, short) if short else (title,)
    if kind == "bar":
        plt.bar(xs, [y or 0 for y in ys], width=0.6, color=colour)
    else:
        _line(plt, ys, colour, second[0] if second else None)
    if second:
        more = [None if v is None else v * scale for v in second[2]]
        _line(plt, more, _rgb(second[3]), second[1])
        ys = ys + more  # the y axis fits both
    plt.xlim(0.5, len(xs) + 0.5)
    top = fixed_top or max((y for y in ys if y is not None), default=0.0)
    yt = y_ticks(top)
    step = yt[1] - yt[0]
    plt.ylim(0, yt[-1] * 1.05)
    y_labels = [tick_label(v, step, money) for v in yt]
    plt.yticks(yt, y_labels)
    plot.days, plot.y_label_width = len(values), max(map(len, y_labels))  # x ticks: at render
    plot.refresh()


def learnings_line(t: dict[str, Any]) -> str:
    """'3 learnings (3 more merged)': the count `learnings` lists, and the merged ones."""
    line = fmt.plural(t.get("learnings", 0), "learning")
    extra = []
    if t.get("learnings_merged"):
        extra.append(f"{t['learnings_merged']} more merged")
    if t.get("learnings_retired"):
        extra.append(f"{t['learnings_retired']} retired")
    return f"{line} ({', '.join(extra)})" if extra else line


def _line(plt: Any, ys: list[float | None], colour: Any, label: str | None) -> None:
    for n, run in enumerate(runs(ys)):
        xs_run, ys_run = [x for x, _ in run], [y for _, y in run]
        named = {"label": label} if label and n == 0 else {}  # one legend entry per series
        if len(run) > 1:
            plt.plot(xs_run, ys_run, marker="braille", color=colour, **named)
        else:  # a lone day between gaps: a dot, or it would not show at all
            plt.scatter(xs_run, ys_run, marker="•", color=colour, **named)


def totals_text(t: dict[str, Any]) -> str:
    rate = t.get("success_rate")
    lines = [f"[b]{fmt.plural(t.get('tasks', 0), 'task')}[/]"]
    for key, label, tone in ENDINGS:
        if t.get(key) or key in ("succeeded", "failed"):
            lines.append(f"{fmt.paint(t.get(key, 0), tone)} {label}")
    if t.get("live"):
        lines.append(f"{t['live']} still running")
    lines.append(f"success {f'{rate * 100:.0f}%' if rate is not None else '—'}")
    lines.append(f"cost {fmt.money(t.get('cost_usd'))}")
    if t.get("working_s") is not None:
        lines.append(f"working {fmt.duration(t['working_s'])}")
        lines.append(f"waiting for you {fmt.duration(t.get('waiting_s') or 0)}")
    lines.append(learnings_line(t))
    return "\n".join(lines)


class MetricsScreen(PanelScreen):
    MODE = "metrics"
    CSS_PATH = "metrics.tcss"
    POLL_S = 10.0
    WATCH = frozenset({"complete", "learning", "rollback"})

    def compose_panel(self) -> ComposeResult:
        with Grid(id="charts", classes="panel-body"):
            for key in CHARTS:
                yield DayChart(id=f"chart-{key}")
            yield Static("", id="totals")

    async def refresh_data(self, engine: Engine) -> None:
        data = await engine.metrics(days=DAYS)
        for key, (title, field, kind, scale, top) in CHARTS.items():
            second = None
            if key in SECOND:
                first, (legend, other, style) = SECOND[key]
                second = (first, legend, data.get(other, []), style)
            draw(self.query_one(f"#chart-{key}", DayChart), title, data.get(field, []), kind,
                 scale, top, money=key == "cost", second=second, short=SHORT.get(key, ""))
        totals = self.query_one("#totals", Static)
        totals.border_title = f"Last {DAYS} days"
        totals.update(totals_text(data.get("totals", {})))
