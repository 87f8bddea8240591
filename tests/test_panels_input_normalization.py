"""Notebook 01's panel (helpers.panels.input_normalization): the default zigzags, divergence is
explained, a round bowl takes one step, and the axis labels stay clear of the ticks."""

import numpy as np
import pytest

from helpers.panels.input_normalization import PANELS, _power_of_ten, compute_gd_two_features


def test_panel_default_zigzags_to_a_finite_step_count():
    view = compute_gd_two_features()
    assert view["steps"] is not None and 100 < view["steps"] < 2000
    assert "steps to reach" in view["status"]
    np.testing.assert_allclose(view["lr_max"], 0.02, rtol=1e-9)


def test_panel_says_why_it_diverges():
    view = compute_gd_two_features(scale_ratio=10.0, learning_rate=0.05)
    assert view["diverged"]
    assert view["status"] == "diverges: learning rate 0.05 is above 2/λ_max = 0.02"


def test_panel_round_bowl_takes_one_step_and_standardizing_removes_the_ratio():
    assert compute_gd_two_features(scale_ratio=1.0, learning_rate=1.0)["steps"] == 1
    z_small = compute_gd_two_features(scale_ratio=1.0, learning_rate=0.5, features="z-score")
    z_large = compute_gd_two_features(scale_ratio=100.0, learning_rate=0.5, features="z-score")
    assert z_small["steps"] == z_large["steps"]
    tilted = compute_gd_two_features(correlation=0.9, learning_rate=0.5, features="z-score")
    np.testing.assert_allclose(tilted["kappa"], 19.0, rtol=1e-9)
    white = compute_gd_two_features(correlation=0.9, learning_rate=1.0, features="whitened (ZCA)")
    assert white["steps"] == 1


@pytest.mark.parametrize("values", [
    {}, {"scale_ratio": 1.0, "features": "z-score"}, {"scale_ratio": 100.0, "learning_rate": 3.0},
    {"correlation": 0.95, "features": "whitened (ZCA)"}, {"correlation": 0.5, "features": "whitened (ZCA)"},
    {"scale_ratio": 100.0, "correlation": 0.95, "learning_rate": 1e-4},  # millions of steps
])
def test_panel_axis_labels_sit_clear_of_the_tick_labels(values):
    """The panel puts its axis labels at fixed places (it does not measure the tick labels on
    every move): they must clear the tick labels whatever the settings; tick labels such as
    300000 must not run into each other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = PANELS[0].draw(compute_gd_two_features(**values))
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in (ax for ax in figure.axes if ax.axison):  # not the see-through overlays
        x_ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
        y_ticks = [t.get_window_extent(renderer) for t in ax.get_yticklabels() if t.get_text()]
        assert ax.xaxis.label.get_window_extent(renderer).y1 < min(box.y0 for box in x_ticks)
        assert ax.yaxis.label.get_window_extent(renderer).x1 < min(box.x0 for box in y_ticks)
        x_ticks.sort(key=lambda box: box.x0)
        assert all(left.x1 < right.x0 for left, right in zip(x_ticks, x_ticks[1:]))
    plt.close(figure)


def test_log_axis_labels_are_plain_text_powers_of_ten():
    assert [_power_of_ten(v) for v in (1e-6, 1.0, 10.0, 1e12)] == ["10⁻⁶", "10⁰", "10¹", "10¹²"]
