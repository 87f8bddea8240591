"""Notebook 08's panels (helpers.panels.bn_in_practice): what they say instead of raising, how
they reuse their computations, and that what they show is what the library computes. The
generic widget tests (tests/test_widgets.py, tests/test_panel_updates.py) move every control."""

import numpy as np
import pytest

from helpers.panel import Notice
from helpers.panels import bn_in_practice as panels
from helpers.welford import one_pass_moments, two_pass_moments


@pytest.mark.parametrize("settings, words", [
    (dict(depth=0), "depth from 1"), (dict(depth=65), "depth from 1"), (dict(gain=3.0), "gain from"),
])
def test_residual_stream_outside_its_ranges_is_a_notice(settings, words):
    result = panels.compute_residual_stream(**settings)
    assert isinstance(result, Notice) and words in result.text


def test_residual_stream_rounds_the_gain_and_shows_a_prefix_of_one_network():
    short = panels.compute_residual_stream(depth=4, gain=1.1)
    long = panels.compute_residual_stream(depth=32, gain=1.0)
    assert short["gain"] == 1.0 and len(short["batch"]) == 5
    np.testing.assert_array_equal(short["batch"], long["batch"][:5])
    np.testing.assert_array_equal(short["none"], long["none"][:5])
    zero = panels.compute_residual_stream(depth=32, zero_init=True)
    np.testing.assert_allclose(zero["batch"], zero["batch"][0], rtol=1e-6)  # every block the identity
    assert long["none"][-1] > 1e6 * long["batch"][-1]


def test_low_precision_result_is_what_helpers_welford_computes():
    result = panels.compute_low_precision(mean=300.0, spread=1.0, batch_size=256, precision="float16")
    assert result["problems"][0] in ("overflow", "nan")
    assert result["errors"][1] < 1e-2 and result["problems"][1:] == ("", "")
    stored = (300.0 + np.random.default_rng(0).standard_normal((256, panels.FEATURES))).astype(np.float16)
    np.testing.assert_array_equal(result["values"], stored[:, 0].astype(np.float64))
    exact = stored.astype(np.float64).var(axis=0)
    two = two_pass_moments(stored)[1].astype(np.float64)
    assert result["errors"][1] == pytest.approx(np.median(np.abs(two - exact) / exact))
    assert panels.compute_low_precision(mean=300.0) is result  # remembered
    cancelled = panels.compute_low_precision(mean=10.0, precision="float16")
    naive = one_pass_moments((10.0 + np.random.default_rng(0).standard_normal((256, panels.FEATURES))).astype(np.float16))[1]
    assert np.all(np.isfinite(naive)) and cancelled["errors"][0] > 0.1


@pytest.mark.parametrize("settings, words", [
    (dict(mean=3000.0, spread=0.01), "no variance left"),
    (dict(precision="float64"), "Choose a precision"),
    (dict(batch_size=1), "at least 2"),
])
def test_low_precision_says_why_it_cannot_compute(settings, words):
    result = panels.compute_low_precision(**settings)
    assert isinstance(result, Notice) and words in result.text


def test_every_panel_has_an_update_and_controls_in_range():
    for panel in panels.PANELS:
        assert panel.update is not None
        assert not isinstance(panel.compute(**panel.defaults()), Notice)
