"""The day labels under the Charts panel's x axes: as many as fit the width, and the same
ones in every run. plotext drops one of two clashing labels in an order that changes
from process to process, which made the 80x24 panel differ from run to run."""

from __future__ import annotations

import plotext

from cockpit.screens.metrics import day_labels, day_ticks


def test_every_chosen_day_label_is_drawn_at_any_width() -> None:
    labels = day_labels(14)
    y_labels = ["$0.00", "$0.05", "$0.10", "$0.15"]
    for width in range(14, 81):
        ticks = day_ticks(14, width - len(y_labels[0]) - 3)
        assert ticks[-1] == 14, "today always has its label"
        plt = plotext
        plt.clear_figure()
        plt.bar(list(range(1, 15)), [0.0] * 13 + [0.12], width=0.6)
        plt.xticks(ticks, [labels[x - 1] for x in ticks])
        plt.xlim(0.5, 14.5)
        plt.yticks([0, 0.05, 0.1, 0.15], y_labels)
        plt.plotsize(width, 10)
        plt.theme("clear")
        axis_row = plotext.uncolorize(plt.build()).splitlines()[-1]
        shown = axis_row.split()
        assert shown == [labels[x - 1] for x in ticks], (width, axis_row)


def test_wider_charts_label_more_days() -> None:
    assert len(day_ticks(14, 20)) < len(day_ticks(14, 60)) <= 14
    assert day_ticks(1, 5) == [1]
