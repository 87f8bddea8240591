"""Notebook 05's panel (helpers.panels.convolutional_bn): which values share one mean and
variance, on default and given feature maps, and a layout that stays put."""

import numpy as np
import pytest

from helpers.norms import group_normalize
from helpers.panel import Notice
from helpers.panels.convolutional_bn import (
    PANELS,
    compute_shared_statistics,
    draw_norm_cubes,
    make_normalization_panel,
)


def feature_map(rng, shape, offset=3.0, scale=2.0):
    return offset + scale * rng.standard_normal(shape)


def test_panel_default_and_extremes():
    panel = PANELS[0]
    result = panel.compute(**panel.defaults())
    assert isinstance(result, dict) and result["count"] == 6 * 28 * 28
    assert isinstance(panel.compute(**{**panel.defaults(), "kind": "group", "groups": 3}), Notice)
    batch_of_one = panel.compute(**{**panel.defaults(), "batch_size": 1})
    assert isinstance(batch_of_one, Notice) and "instance norm" in batch_of_one.text
    clamped = panel.compute(**{**panel.defaults(), "batch_size": 2, "sample": 5})
    assert clamped["sample"] == 1 and clamped["notes"]
    for values in panel.test_grid():
        panel.compute(**values)  # never raises


def test_panel_on_given_feature_maps(rng):
    maps = feature_map(rng, (3, 4, 5, 5))
    panel = make_normalization_panel(maps)
    result = panel.compute(kind="group", groups=2, batch_size=3, sample=2, channel=3)
    assert result["mask"].sum() == 2
    np.testing.assert_allclose(result["normalized"], group_normalize(maps, 2))
    shared = compute_shared_statistics("layer", 1, 3, 0, 0, feature_maps=maps)
    assert shared["shared_mean"] == pytest.approx(maps[0].mean())


def test_figures_draw():
    import matplotlib.pyplot as plt

    plt.close(draw_norm_cubes())
    plt.close(PANELS[0].render(kind="instance", sample=3, channel=7))


def test_a_smaller_batch_keeps_the_layout_and_leaves_rows_blank():
    import matplotlib.pyplot as plt

    from helpers.panels import PanelView

    panel = PANELS[0]
    view = PanelView(panel)
    view.frame(panel.defaults())
    figure = view.figure
    positions = [ax.get_position().bounds for ax in figure.axes]
    view.frame({**panel.defaults(), "batch_size": 3, "sample": 5})
    assert figure is view.figure  # updated in place
    assert [ax.get_position().bounds for ax in figure.axes] == positions
    artists = figure._panel_artists
    image = artists["image"].get_array()
    rows_of_three = image.shape[0] // 2  # six rows of tiles: the last three are blank
    assert np.all(image[rows_of_three + 2:] == 1.0)
    assert artists["outside_batch"].get_text() == "not in the batch of 3"
    assert "showing sample 2" in artists["notes"].get_text()
    assert len(artists["cube_columns"].get_paths()) == 3 * 16 * 3  # 3 samples x 16 channels x 3 faces
    plt.close(figure)
