"""helpers.welford: Welford's update and the two-pass moments against numpy in float64 (1e-9),
the one-pass formula failing where it should (float16 near a few hundred, float32 at large
offsets), and bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.welford import one_pass_moments, two_pass_moments, welford_moments, welford_update


@pytest.mark.parametrize("moments", [welford_moments, two_pass_moments])
def test_moments_match_numpy_in_float64(rng, moments):
    x = rng.normal(loc=[0.0, 5.0, -300.0, 1e6], scale=[1.0, 0.01, 20.0, 3.0], size=(257, 4))
    mean, var = moments(x)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), d=st.integers(1, 4), offset=st.floats(-1e6, 1e6),
       log_scale=st.floats(-3, 3), seed=st.integers(0, 2**31 - 1))
def test_welford_matches_numpy_variance_property(n, d, offset, log_scale, seed):
    scale = 10.0**log_scale
    x = offset + scale * np.random.default_rng(seed).standard_normal((n, d))
    mean, var = welford_moments(x)
    # float64 itself rounds each value by about 1e-16 * |offset|: relative to the spread that is
    # 1e-16 * |offset| / scale, which bounds how well any method (numpy's too) can do
    rtol = max(1e-9, 1e-14 * abs(offset) / scale)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12, atol=1e-9 * scale)
    np.testing.assert_allclose(var, x.var(axis=0), rtol=rtol, atol=1e-12 * scale**2)


def test_welford_update_streams_one_value_at_a_time_and_returns_new_arrays():
    values = np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])  # mean 5, variance 4
    count, mean, m2 = 0, np.zeros(()), np.zeros(())
    for value in values:
        old_mean = mean
        count, mean, m2 = welford_update(count, mean, m2, value)
        assert mean is not old_mean
    assert count == 8 and mean == 5.0 and m2 / count == 4.0
    with pytest.raises(ValueError, match="count"):
        welford_update(-1, 0.0, 0.0, 1.0)


def test_the_one_pass_formula_fails_in_float16_at_a_few_hundred_and_the_others_do_not(rng):
    x = (300.0 + rng.standard_normal((256, 8))).astype(np.float16)
    exact = x.astype(np.float64).var(axis=0)
    assert not np.any(np.isfinite(one_pass_moments(x)[1]))  # 300^2 = 90000 > 65504: overflow
    assert np.all(np.abs(two_pass_moments(x)[1] / exact - 1) < 0.01)
    assert np.all(np.isfinite(welford_moments(x)[1]))
    small = (10.0 + rng.standard_normal((256, 8))).astype(np.float16)  # no overflow: cancellation
    exact_small = small.astype(np.float64).var(axis=0)
    assert np.median(np.abs(one_pass_moments(small)[1] / exact_small - 1)) > 0.1
    assert np.all(np.abs(two_pass_moments(small)[1] / exact_small - 1) < 0.01)


def test_the_one_pass_formula_cancels_in_float32_at_large_offsets(rng):
    x = (1e4 + rng.standard_normal((256, 8))).astype(np.float32)
    exact = x.astype(np.float64).var(axis=0)
    assert np.median(np.abs(one_pass_moments(x)[1] / exact - 1)) > 1
    assert np.all(np.abs(two_pass_moments(x)[1] / exact - 1) < 1e-4)
    assert np.all(np.abs(welford_moments(x)[1] / exact - 1) < 1e-2)


def test_dtype_controls_the_precision_and_bad_input_is_refused():
    x = np.arange(12.0).reshape(6, 2)
    assert welford_moments(x, np.float32)[1].dtype == np.float32
    assert two_pass_moments(np.arange(6))[1].dtype == np.float64  # integers become float64
    with pytest.raises(ValueError, match="floating dtype"):
        welford_moments(x, np.int32)
    with pytest.raises(ValueError, match="N >= 1"):
        two_pass_moments(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="N >= 1"):
        one_pass_moments(np.float64(3.0))
