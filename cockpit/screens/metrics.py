"""0 · Charts & Metrics: tasks per day, success-rate trend, average execution time, cost
per day and learnings accumulated, over the last two weeks (plotext via textual-plotext)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Static
from textual_plotext import PlotextPlot

from .. import fmt
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

DAYS = 14
# chart id -> (title, metrics key, kind, scale)
CHARTS: dict[str, tuple[str, str, str, float]] = {
    "tasks": ("Tasks per day", "tasks_per_day", "bar", 1.0),
    "success": ("Success rate %", "success_rate", "line", 100.0),
    "duration": ("Avg execution time (s)", "avg_duration_s", "line", 1.0),
    "cost": ("Cost per day ($)", "cost_per_day", "bar", 1.0),
    "learnings": ("Learnings accumulated", "learnings_total", "line", 1.0),
}


def day_labels(n: int) -> list[str]:
    """Relative day labels ('-13d' … 'today'): readable, and the same every day."""
    return [f"-{n - 1 - i}d" if i < n - 1 else "today" for i in range(n)]


def draw(plot: PlotextPlot, title: str, values: list[Any], kind: str, scale: float) -> None:
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    xs = list(range(1, len(values) + 1))
    ys = [(v or 0) * scale for v in values]
    labels = day_labels(len(values))
    ticks = [x for x in xs if (len(xs) - x) % 4 == 0]
    plt.title(title)
    if kind == "bar":
        plt.bar(xs, ys, width=0.6)
    else:
        plt.plot(xs, ys, marker="braille")
    plt.xticks(ticks, [labels[x - 1] for x in ticks])
    plt.ylim(0, max(ys + [1.0]) * 1.1)
    plot.refresh()


class MetricsScreen(PanelScreen):
    MODE = "metrics"
    CSS_PATH = "metrics.tcss"
    POLL_S = 10.0
    WATCH = frozenset({"complete", "learning"})

    def compose_panel(self) -> ComposeResult:
        with Grid(id="charts", classes="panel-body"):
            for key in CHARTS:
                yield PlotextPlot(id=f"chart-{key}")
            yield Static("", id="totals")

    async def refresh_data(self, engine: Engine) -> None:
        data = await engine.metrics(days=DAYS)
        for key, (title, field, kind, scale) in CHARTS.items():
            draw(self.query_one(f"#chart-{key}", PlotextPlot), title, data.get(field, []), kind, scale)
        t = data.get("totals", {})
        rate = t.get("success_rate")
        totals = self.query_one("#totals", Static)
        totals.border_title = f"Last {DAYS} days"
        totals.update(
            f"[b]{t.get('tasks', 0)}[/] tasks\n[green]{t.get('succeeded', 0)}[/] succeeded\n"
            f"[red]{t.get('failed', 0)}[/] failed\n"
            f"success {f'{rate * 100:.0f}%' if rate is not None else '—'}\n"
            f"cost {fmt.money(t.get('cost_usd'))}\n{t.get('learnings', 0)} learnings")
