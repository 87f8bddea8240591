"""Notebook 04's panel: every control value computes, batch size 1 gives a Notice, and the
results show what the notebook says they show."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers.panel import Notice  # noqa: E402
from helpers.panels.inference_statistics import (  # noqa: E402
    AVERAGES,
    ORDERS,
    PANELS,
    compute_running_estimates,
    draw_running_estimates,
)


def test_every_control_combination_computes_without_raising():
    panel = PANELS[0]
    for values in panel.test_grid():
        result = panel.compute(**values)
        assert isinstance(result, (dict, Notice)), values


def test_batch_of_one_gives_a_clear_notice():
    result = compute_running_estimates(batch_size=1)
    assert isinstance(result, Notice)
    assert "Expected more than 1 value per channel" in result.text
    assert "eval mode" in result.text


@pytest.mark.parametrize("values", [{}, {"momentum": 0.001}, {"momentum": 1.0, "batch_size": 2},
                                    {"order": ORDERS[1], "average": AVERAGES[1]}])
def test_draw_returns_a_figure(values):
    figure = PANELS[0].render(**values)
    assert isinstance(figure, matplotlib.figure.Figure)
    plt.close(figure)


def test_default_estimates_converge_to_the_population():
    result = compute_running_estimates()
    assert result["final_mean_error"] < 0.1
    assert 0.8 < result["final_var_ratio"] < 1.25
    assert result["accuracy"][-1] > result["population_accuracy"] - 0.02
    # the start-up: the first estimates are near torch's starting values, not the population
    assert abs(result["running_mean"][0]) < abs(result["population_mean"])


def test_tiny_momentum_is_still_biased_toward_the_start_after_200_batches():
    result = compute_running_estimates(momentum=0.001)
    assert result["final_mean_error"] > 0.2
    assert result["accuracy"][-1] < result["population_accuracy"] - 0.05


def test_sorted_batches_mislead_the_ema_and_shrink_the_variance():
    shuffled = compute_running_estimates()
    ema_sorted = compute_running_estimates(order=ORDERS[1])
    cumulative_sorted = compute_running_estimates(order=ORDERS[1], average=AVERAGES[1])
    assert ema_sorted["final_mean_error"] > 3 * shuffled["final_mean_error"]
    # the cumulative average over whole epochs gets the mean right but sees only the spread
    # inside each (one-class) batch, so it underestimates the variance
    assert cumulative_sorted["final_mean_error"] < 1e-6
    assert cumulative_sorted["final_var_ratio"] < 0.7


def test_widget_builds_headless_and_redraws():
    from helpers.panel import Notice

    box = PANELS[0].widget()
    assert set(box.controls) == {"momentum", "batch_size", "order", "average"}
    assert isinstance(box.shown(), bytes)  # the default figure, drawn at once
    box.controls["batch_size"].value = 1  # the extreme: a Notice, not an error
    assert box.wait(60)
    assert isinstance(box.shown(), Notice) and "could not be drawn" not in box.shown().text
    box.controls["order"].value = ORDERS[1]
    box.controls["batch_size"].value = 2
    assert box.wait(60)
    assert isinstance(box.shown(), bytes) and box.shown()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close("all")


def test_result_arrays_have_matching_lengths():
    result = compute_running_estimates(batch_size=5)
    assert len(result["steps"]) == len(result["running_mean"]) == len(result["batch_mean"])
    assert len(result["checkpoints"]) == len(result["accuracy"])
    assert np.all(np.isfinite(result["running_var"]))
    plt.close(draw_running_estimates(result))


def test_the_panel_keeps_its_axes_still_across_moves():
    from helpers.panels import PanelView

    view = PanelView(PANELS[0])
    view.frame(PANELS[0].defaults())
    still_axes = view.figure._panel_artists["still_axes"]
    limits = [(ax.get_xlim(), ax.get_ylim()) for ax in still_axes]
    for values in ({"momentum": 1.0, "batch_size": 2}, {"order": ORDERS[1], "average": AVERAGES[1]}):
        view.frame({**PANELS[0].defaults(), **values})
        assert [(ax.get_xlim(), ax.get_ylim()) for ax in still_axes] == limits
        assert len(view.figure._panel_artists["backdrop"]._kept) == 1  # drawn once, pasted since
    plt.close("all")
