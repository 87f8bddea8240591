"""How fast each panel redraws: compute + matplotlib draw + PNG rendering (what the notebook's
inline backend does when the figure is displayed), over each control's range."""

from __future__ import annotations

import io
import time

import matplotlib

from benchmarks.common import Result, at_most
from helpers.panels import Notice, all_panels


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


def redraw_seconds(panel, values: dict) -> float:
    """Seconds from a value change to a finished PNG of the figure (or the notice)."""
    import matplotlib.pyplot as plt

    start = time.perf_counter()
    shown = panel.render(**values)
    if not isinstance(shown, Notice):
        shown.savefig(io.BytesIO(), format="png")
        plt.close(shown)
    return time.perf_counter() - start


def run(tiny: bool = False) -> list[Result]:
    import numpy as np

    matplotlib.use("Agg")
    results = []
    for panel in all_panels():
        panel.render(**panel.defaults())  # warm caches a notebook would already have filled
        times = [redraw_seconds(panel, panel.defaults())]
        for control in [] if tiny else panel.controls:
            for value in _values_across(control, 6):
                times.append(redraw_seconds(panel, {**panel.defaults(), control.name: value}))
        median_ms = float(np.median(times)) * 1e3
        p95_ms = float(np.percentile(times, 95)) * 1e3
        results += [
            at_most(f"slider median: {panel.name}", median_ms, "ms", 100),
            at_most(f"slider p95: {panel.name}", p95_ms, "ms", 250),
        ]
    return results
