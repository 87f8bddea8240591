"""Panels that redraw in place (``Panel.update``) must show what a fresh ``draw`` shows.

For every panel with an ``update``: move each control through its test values, as a learner
would, with one kept figure; after every move the kept figure must look like a figure drawn
from scratch for the same values (the same pixels, up to antialiasing noise)."""

import io

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from helpers.panels import Notice, PanelView, all_panels  # noqa: E402

UPDATING = [panel for panel in all_panels() if panel.update is not None]


def pixels(figure) -> np.ndarray:
    """The figure's own canvas (no cropping), as an (H, W, 4) float array."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    return mpimg.imread(buffer, format="png")


def moves(panel):
    """Each control through its test values and back to its default, the others at defaults."""
    for control in panel.controls:
        for value in [*control.values_to_test(), control.value]:
            yield {**panel.defaults(), control.name: value}


@pytest.mark.skipif(not UPDATING, reason="no panel redraws in place yet")
@pytest.mark.parametrize("panel", UPDATING, ids=lambda panel: panel.name)
def test_a_kept_figure_looks_like_a_fresh_one_after_every_move(panel):
    kept = PanelView(panel)
    failures = []
    for values in moves(panel):
        frame = kept.frame(values)
        if isinstance(frame, Notice):
            continue
        result = panel.compute(**values)
        fresh = panel.draw(result)
        expected, actual = pixels(fresh), pixels(kept.figure)
        plt.close(fresh)
        if expected.shape != actual.shape:
            failures.append(f"{values}: figure size {actual.shape[:2]} after update, {expected.shape[:2]} fresh")
            continue
        different = np.abs(expected - actual).max(axis=2) > 0.25
        if different.mean() > 0.005:
            failures.append(f"{values}: {different.mean():.1%} of the pixels differ from a fresh draw")
    assert not failures, f"{panel.name}: update() and draw() disagree:\n" + "\n".join(failures[:10])


def test_the_check_catches_an_update_that_forgets_something():
    """A panel whose update leaves the old title and line in place must fail the comparison."""
    from helpers.panel import Control, Panel

    def compute(slope):
        return slope

    def draw(slope):
        figure, axes = plt.subplots(figsize=(3, 2))
        axes.plot([0, 1], [0, slope])
        axes.set_ylim(-2, 2)
        axes.set_title(f"slope {slope}")
        return figure

    def forgetful_update(figure, slope):
        pass

    panel = Panel("fixture", compute, draw, [Control("slope", "float", 1.0, low=-1.0, high=1.0)],
                  update=forgetful_update)
    kept = PanelView(panel)
    kept.frame({"slope": 1.0})
    kept.frame({"slope": -1.0})
    fresh = draw(-1.0)
    different = np.abs(pixels(fresh) - pixels(kept.figure)).max(axis=2) > 0.25
    plt.close(fresh)
    assert different.mean() > 0.005
