"""How fast each panel redraws: what its widget does on a slider move (``PanelView.frame``:
compute, then update or draw the figure, then render the PNG), over each control's range,
one move after another as a learner would drag.

Each panel is dragged over the same moves twice, in a fresh process. The first time
("first visit") a panel that trains networks trains every setting it has not seen; in the
notebook the cells before the widget (and its own cell) have trained most of them already.
The second time ("seen before") every setting is remembered: what a learner feels when
coming back to a setting, and in the notebook for the settings its cells prepared.

Then each live panel's widget (``Panel.widget()``, built without a kernel) is dragged: its first
slider that applies at the defaults goes from one end to the other in steps every 16 ms for about 2 s, as a browser sends
them, while its ``LiveRenderer`` draws on its thread. Reported: the frames per second shown
during the drag (goal >= 10) and the delay from the release (the last value) to the frame for
it (goal <= 250 ms). Panels without a slider (only dropdowns) have nothing to drag; release-only
panels (``Panel.release_only``) redraw on release only and are not dragged."""

from __future__ import annotations

import time

import matplotlib

from benchmarks.common import Result, at_least, at_most
from helpers.panels import PanelView, all_panels

#: How often a browser sends a dragged slider's value, and for how long a drag lasts.
DRAG_STEP_SECONDS, DRAG_SECONDS = 0.016, 2.0


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


def drag_values(control, count: int) -> list:
    """``count`` values from one end of a slider to the other, on its steps (as a browser
    sends them), repeated values dropped (a drag sends only changes)."""
    import math

    import numpy as np

    if control.kind == "log":
        step = control.step or 0.1
        exponents = np.linspace(math.log10(control.low), math.log10(control.high), count)
        values = [float(10 ** (round(e / step) * step)) for e in exponents]
    elif control.kind == "int":
        values = [int(round(v)) for v in np.linspace(control.low, control.high, count)]
    else:
        step = control.step or 0.01
        values = [round(control.low + round((v - control.low) / step) * step, 10)
                  for v in np.linspace(control.low, control.high, count)]
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def drag(box, control, seconds: float = DRAG_SECONDS, every: float = DRAG_STEP_SECONDS) -> dict:
    """Drag ``control``'s slider of the widget ``box`` over its range in ``seconds``, a value
    every ``every`` seconds (values that repeat are not sent); return the frames shown during the
    drag, its length, and the seconds from the last value to its frame."""
    slider = box.controls[control.name]
    values = drag_values(control, max(2, int(seconds / every)))
    if values[0] == slider.value:
        values = values[1:]
    renderer = box.renderer
    frames_before = renderer.frames
    start = next_at = time.perf_counter()
    for value in values:
        slider.value = value
        next_at += seconds / len(values)
        time.sleep(max(0.0, next_at - time.perf_counter()))
    released = time.perf_counter()
    frames = renderer.frames - frames_before
    renderer.wait(120)
    return {"frames": frames, "seconds": released - start, "release": time.perf_counter() - released}


def drag_results(tiny: bool = False) -> list[Result]:
    """Frames per second during a drag of each live panel's first slider, and the release delay."""
    import matplotlib.pyplot as plt

    results = []
    for panel in all_panels():
        applies = panel.active(panel.defaults())
        sliders = [control for control in panel.controls
                   if control.kind in ("int", "float", "log") and applies[control.name]]
        if not panel.live or not sliders:
            continue
        box = panel.widget()
        measured = drag(box, sliders[0], seconds=0.3 if tiny else DRAG_SECONDS)
        box.renderer.wait(120)
        plt.close("all")
        name = f"{panel.name} ({sliders[0].name})"
        results += [
            at_least(f"drag frames/s: {name}", measured["frames"] / measured["seconds"], "fps", 10),
            at_most(f"drag release -> final frame: {name}", measured["release"] * 1e3, "ms", 250),
        ]
    return results


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
    return results + drag_results(tiny)
