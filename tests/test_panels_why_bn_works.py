"""Notebook 07's panels (helpers.panels.why_bn_works): what they say instead of raising, and
how they reuse runs. The generic widget tests (tests/test_widgets.py) call every panel over its
controls' extremes and draw the figures; these tests train nothing."""

import pytest

from helpers.lessons import why_bn_works as why
from helpers.panel import Notice
from helpers.panels import why_bn_works as panels


@pytest.mark.parametrize("noise", [-0.25, 2.5])
def test_a_noise_outside_0_to_2_is_a_notice(noise):
    result = panels.compute_noisy_bn(noise)
    assert isinstance(result, Notice) and "between 0 and 2" in result.text


def test_noise_is_rounded_to_the_sliders_steps_so_runs_are_reused(monkeypatch):
    asked = []
    monkeypatch.setattr(panels, "recorded_noisy_bn_result", lambda noise: asked.append(noise) or {})
    for noise in (0.3, 0.25, 0.2, 1.9):
        panels.compute_noisy_bn(noise)
    assert asked == [0.25, 0.25, 0.25, 2.0]


def test_a_gradient_walk_shorter_than_the_smallest_step_is_a_notice():
    result = panels.compute_gradient_walk(step=150, largest_multiple=0.01)
    assert isinstance(result, Notice) and "at least" in result.text


def test_bn_on_a_batch_of_one_in_the_mlp_says_what_to_choose_instead():
    result = panels.compute_batch_size("mlp", "batch", 1)
    assert isinstance(result, Notice)
    assert "batch size of 2 or more" in result.text


def test_the_sliders_cover_the_lessons_settings():
    noisy, walk, size = panels.PANELS
    assert walk.controls[0].high == why.MLP_STEPS
    assert size.controls[2].options == why.BATCH_SIZES
    assert size.controls[1].options == why.SIZE_NORMS


def test_the_panels_read_the_recorded_runs_and_train_nothing(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a panel trained")

    for name in ("train_mlp", "batch_size_run", "landscape_probe", "normalizing_means"):
        monkeypatch.setattr(why, name, no_training)
    for panel in panels.PANELS:
        for values in panel.test_grid():
            panel.compute(**{**panel.defaults(), **values})


def test_the_recorded_noisy_bn_result_is_the_notebooks_result_for_seed_0():
    recorded = panels.recorded_noisy_bn_result(1.5)
    assert recorded["noise"] == 1.5 and recorded["seeds"] == (0,)
    assert recorded["runs"]["noisy"][0].noise == 1.5
    assert panels.recorded_noisy_bn_result(0.0)["runs"]["noisy"][0] is recorded["runs"]["batch"][0]


def test_the_batch_size_panel_shows_every_recorded_run_of_its_model():
    result = panels.compute_batch_size("cnn", "group", 8)
    assert result["run"].norm == "group" and result["run"].batch_size is None
    assert sorted(result["points"]) == sorted((norm, size) for norm in why.SIZE_NORMS
                                              for size in why.BATCH_SIZES)
    mlp = panels.compute_batch_size("mlp", "batch", 4)
    assert ("batch", 1) not in mlp["points"] and len(mlp["means"]["per_image"]) == why.PANEL_MEAN_IMAGES
