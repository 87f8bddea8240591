"""Notebook 04's panel: every control value computes, batch size 1 gives a Notice, and the
results show what the notebook says they show."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers.panels.base import Notice  # noqa: E402
from helpers.panels.running_stats import (  # noqa: E402
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


def test_widget_builds_headless_and_redraws(capsys):
    # Outside a kernel the Output widget captures nothing: what it would show goes to stdout.
    box = PANELS[0].widget()
    assert set(box.controls) == {"momentum", "batch_size", "order", "average"}
    box.controls["batch_size"].value = 1  # the extreme: a Notice, not an error
    box.controls["order"].value = ORDERS[1]
    box.controls["batch_size"].value = 2
    shown = capsys.readouterr().out
    assert "Image" in shown and "Notice" in shown  # the widget shows the figure as a PNG
    assert "could not be drawn" not in shown
    plt.close("all")


def test_result_arrays_have_matching_lengths():
    result = compute_running_estimates(batch_size=5)
    assert len(result["steps"]) == len(result["running_mean"]) == len(result["batch_mean"])
    assert len(result["checkpoints"]) == len(result["accuracy"])
    assert np.all(np.isfinite(result["running_var"]))
    plt.close(draw_running_estimates(result))


# -- the Backdrop: still artists drawn once, pasted back -----------------------------------


def _png_pixels(figure, **savefig):
    import io

    import matplotlib.image as mpimg

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **savefig)
    buffer.seek(0)
    return mpimg.imread(buffer, format="png")


def _figure_with_backdrop(title):
    from helpers.panels.backdrop import Backdrop, overlay_axes

    figure, still = plt.subplots(figsize=(3, 2))
    still.set(xlim=(0, 1), ylim=(0, 1), title=title)
    line = overlay_axes(still).plot([0, 1], [0, 1], lw=3)[0]
    backdrop = Backdrop(figure, [still])
    return figure, still, line, backdrop


def test_a_pasted_backdrop_looks_like_a_fresh_draw():
    figure, _, line, _ = _figure_with_backdrop("still")
    first = _png_pixels(figure)
    line.set_ydata([1, 0])  # what moves is drawn anew over the pasted still part
    second = _png_pixels(figure)
    fresh, _, fresh_line, _ = _figure_with_backdrop("still")
    fresh_line.set_ydata([1, 0])
    assert np.abs(second - _png_pixels(fresh)).max() < 1e-6
    assert np.abs(first - second).max() > 0.5  # the line did move
    plt.close(figure)
    plt.close(fresh)


def test_a_changed_still_artist_shows_after_forget():
    figure, still, _, backdrop = _figure_with_backdrop("before")
    _png_pixels(figure)
    still.set_title("after, a longer title")
    stale = _png_pixels(figure)  # the Backdrop does not notice by itself...
    backdrop.forget()  # ...whoever changes a still artist tells it
    redrawn = _png_pixels(figure)
    fresh = _figure_with_backdrop("after, a longer title")[0]
    assert np.abs(redrawn - _png_pixels(fresh)).max() < 1e-6
    assert np.abs(stale - redrawn).max() > 0.5
    plt.close(figure)
    plt.close(fresh)


def test_a_backdrop_keeps_one_picture_per_canvas_and_draws_vector_output_in_full():
    import io

    figure, _, _, _ = _figure_with_backdrop("a title")
    plain = _png_pixels(figure)
    tight = _png_pixels(figure, bbox_inches="tight")  # a layout pass, then another canvas
    assert tight.shape != plain.shape
    assert np.abs(_png_pixels(figure) - plain).max() < 1e-6
    assert np.abs(_png_pixels(figure, bbox_inches="tight") - tight).max() < 1e-6
    svg = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):  # text kept as text
        figure.savefig(svg, format="svg")
    assert "a title" in svg.getvalue()  # no pixels to paste: the still axes are drawn
    plt.close(figure)


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


def test_redraw_if_changed_draws_the_still_artists_again_only_for_a_new_key():
    figure, still, _, backdrop = _figure_with_backdrop("before")
    assert backdrop.redraw_if_changed(still.get_xlim())  # the first key: drawn
    _png_pixels(figure)
    assert not backdrop.redraw_if_changed(still.get_xlim())  # the same key: pixels kept
    still.set_xlim(0, 2)
    assert backdrop.redraw_if_changed(still.get_xlim())  # new limits: drawn again
    redrawn = _png_pixels(figure)
    fresh, fresh_still, _, _ = _figure_with_backdrop("before")
    fresh_still.set_xlim(0, 2)
    assert np.abs(redrawn - _png_pixels(fresh)).max() < 1e-6
    plt.close(figure)
    plt.close(fresh)
