"""How fast each panel redraws: what its widget does on a slider move (``PanelView.frame``:
compute, then update or draw the figure, then render the PNG), over each control's range,
one move after another as a learner would drag.

Each panel is dragged over the same moves twice, in a fresh process. The first time
("first visit") a panel that trains networks trains every setting it has not seen; in the
notebook the cells before the widget (and its own cell) have trained most of them already.
The second time ("seen before") every setting is remembered: what a learner feels when
coming back to a setting, and in the notebook for the settings its cells prepared."""

from __future__ import annotations

import time

import matplotlib

from benchmarks.common import Result, at_most
from helpers.panels import PanelView, all_panels


def _values_across(control, count: int) -> list:
    if control.kind in ("choice", "toggle"):
        return list(control.values_to_test())
    if control.kind == "log":
        import numpy as np

        return list(np.geomspace(control.low, control.high, count))
    if control.kind == "int":
        import numpy as np

        return sorted({int(round(v)) for v in np.linspace(control.low, control.high, count)})
    import numpy as np

    return list(np.linspace(control.low, control.high, count))


def redraw_seconds(view, values: dict) -> float:
    """Seconds from a value change to the finished PNG (or notice) the widget shows."""
    start = time.perf_counter()
    view.frame(values)
    return time.perf_counter() - start


def run(tiny: bool = False) -> list[Result]:
    import numpy as np

    matplotlib.use("Agg")
    results = []
    for panel in all_panels():
        view = PanelView(panel)
        view.frame(panel.defaults())  # the widget's first figure, drawn when the cell runs
        moves = [panel.defaults()]
        for control in [] if tiny else panel.controls:
            moves += [{**panel.defaults(), control.name: value}
                      for value in _values_across(control, 6)]
        for visit in ("first visit", "seen before"):
            times = [redraw_seconds(view, values) for values in moves]
            median_ms = float(np.median(times)) * 1e3
            p95_ms = float(np.percentile(times, 95)) * 1e3
            results += [
                at_most(f"slider median, {visit}: {panel.name}", median_ms, "ms", 100),
                at_most(f"slider p95, {visit}: {panel.name}", p95_ms, "ms", 250),
            ]
    return results
