"""The gradient checker itself: it passes correct gradients and catches wrong ones."""

import numpy as np
import pytest

from helpers import bn
from helpers.gradcheck import (
    CORRECT_BELOW,
    WRONG_ABOVE,
    check_layer_gradients,
    numerical_gradient,
    rel_error,
    verdict,
)


def test_numerical_gradient_of_a_known_function(rng):
    x = rng.normal(size=(3, 4))
    dout = rng.normal(size=(3, 4))
    grad = numerical_gradient(lambda v: v**3, x, dout)
    # the centered difference of v**3 is off by exactly h**2 * dout (the third-derivative term)
    np.testing.assert_allclose(grad, 3 * x**2 * dout, rtol=1e-8, atol=1e-9)


def test_numerical_gradient_restores_x(rng):
    x = rng.normal(size=5)
    before = x.copy()
    numerical_gradient(np.sin, x, np.ones(5))
    np.testing.assert_array_equal(x, before)


def test_rel_error():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        rel_error(np.zeros(2), np.zeros(3))


def test_verdict_thresholds():
    assert verdict(CORRECT_BELOW / 10) == "correct"
    assert verdict(WRONG_ABOVE / 10) == "suspicious"
    assert verdict(WRONG_ABOVE * 10) == "WRONG"


@pytest.mark.parametrize("backward", [bn.batchnorm_backward, bn.batchnorm_backward_compact])
def test_batchnorm_backward_passes_the_check(rng, backward):
    x = rng.normal(1.0, 2.0, size=(6, 4))
    report = check_layer_gradients(bn.batchnorm_forward, backward, x, rng.normal(size=4), rng.normal(size=4))
    assert set(report.errors) == {"dx", "dgamma", "dbeta"}
    assert report.passed, str(report)
    assert "correct" in str(report)


def test_a_backward_without_the_mean_term_fails_the_check(rng):
    def backward_forgetting_the_mean(dout, cache):
        dx, dgamma, dbeta = bn.batchnorm_backward_compact(dout, cache)
        return dx + (cache.gamma * cache.inv_std * dout).mean(axis=0), dgamma, dbeta

    x = rng.normal(size=(6, 4))
    report = check_layer_gradients(bn.batchnorm_forward, backward_forgetting_the_mean, x, np.ones(4), np.zeros(4))
    assert not report.passed
    assert report.errors["dx"] > WRONG_ABOVE
    assert report.errors["dgamma"] < CORRECT_BELOW
    assert "WRONG" in str(report)


# --- the probe and gradients too small to judge -----------------------------------------------


def test_the_issue_example_a_correct_backward_seeded_like_the_data_passes():
    """The course seeds everything with 0; the check's own probe must not be the same numbers."""
    x = np.random.default_rng(0).standard_normal((8, 4))
    for backward in (bn.batchnorm_backward, bn.batchnorm_backward_compact):
        report = check_layer_gradients(bn.batchnorm_forward, backward, x, np.ones(4), np.zeros(4))
        assert report.passed, str(report)
        assert "WRONG" not in str(report) and "too small" not in str(report)


@pytest.mark.parametrize("seed", range(6))
def test_the_default_probe_is_not_drawn_from_the_learners_stream(seed):
    seen = []

    def backward(dout, cache):
        seen.append(dout.copy())
        return bn.batchnorm_backward(dout, cache)

    for shape in [(8, 4), (5, 3)]:
        x = np.random.default_rng(seed).standard_normal(shape)
        check_layer_gradients(bn.batchnorm_forward, backward, x, np.ones(shape[1]), np.zeros(shape[1]), seed=seed)
        probe = seen[-1]
        for draw in (np.random.default_rng(seed).standard_normal(shape),
                     np.random.default_rng(seed).normal(size=shape)):
            assert not np.allclose(probe, draw)
            assert abs(np.corrcoef(probe.ravel(), draw.ravel())[0, 1]) < 0.9
    # still reproducible: the same seed gives the same probe
    check_layer_gradients(bn.batchnorm_forward, backward, x, np.ones(3), np.zeros(3), seed=seed)
    np.testing.assert_array_equal(seen[-1], seen[-2])


def test_a_gradient_too_small_for_a_relative_error_is_reported_as_such():
    """dout = x makes the true dx nearly 0 (~1e-5): its relative error is noise against noise.
    The report must say so and give the absolute error, not call the correct backward WRONG."""
    x = np.random.default_rng(0).standard_normal((8, 4))
    report = check_layer_gradients(bn.batchnorm_forward, bn.batchnorm_backward, x, np.ones(4), np.zeros(4), dout=x)
    text = str(report)
    assert "WRONG" not in text.splitlines()[0], text
    assert "too small" in text and "absolute error" in text, text
    assert report.too_small("dx") and not report.too_small("dgamma")
    assert not report.passed  # a check that cannot judge does not pass
    assert report.absolute_errors["dx"] < 1e-8
    assert report.errors["dx"] > CORRECT_BELOW  # the relative error itself is still reported


def test_an_all_ones_probe_is_too_small_for_dx_and_dgamma():
    x = np.random.default_rng(3).normal(2.0, 3.0, size=(6, 3))
    ones = np.ones((6, 3))
    report = check_layer_gradients(bn.batchnorm_forward, bn.batchnorm_backward, x, np.ones(3), np.zeros(3), dout=ones)
    assert report.too_small("dx") and report.too_small("dgamma") and not report.too_small("dbeta")
    assert not report.passed


def test_a_wrong_backward_with_an_ordinary_gradient_is_still_wrong(rng):
    def backward_without_the_variance_path(dout, cache):
        dx_hat = dout * cache.gamma
        dx = cache.inv_std * (dx_hat - dx_hat.mean(axis=0))
        return dx, (dout * cache.x_hat).sum(axis=0), dout.sum(axis=0)

    x = np.random.default_rng(0).standard_normal((8, 4))
    report = check_layer_gradients(bn.batchnorm_forward, backward_without_the_variance_path, x, np.ones(4), np.zeros(4))
    assert not report.too_small("dx") and verdict(report.errors["dx"]) == "WRONG"
    assert "WRONG" in str(report)


def test_reports_of_ordinary_gradients_print_as_before():
    """Notebook 03's check: every entry is far above the noise, so nothing changes."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)) * np.linspace(0.5, 2.0, 3) + np.linspace(-1.0, 2.0, 3)
    gamma, beta = 1.0 + 0.5 * rng.standard_normal(3), rng.standard_normal(3)
    dout = np.random.default_rng(1).standard_normal((8, 3))
    report = check_layer_gradients(bn.batchnorm_forward, bn.batchnorm_backward, x, gamma, beta, dout=dout)
    assert report.left_out == {"dx": 0, "dgamma": 0, "dbeta": 0}
    numeric = numerical_gradient(lambda v: bn.batchnorm_forward(v, gamma, beta)[0], x.copy(), dout)
    assert report.errors["dx"] == rel_error(bn.batchnorm_backward(dout, bn.batchnorm_forward(x, gamma, beta)[1])[0], numeric)
    lines = str(report).splitlines()
    assert len(lines) == 4
    for line, name in zip(lines, ("dx", "dgamma", "dbeta")):
        assert line == f"{name:>7}: relative error {report.errors[name]:.2e}  -> correct"


@pytest.mark.parametrize("shape", [(2, 3), (60, 20), (256, 10)])
def test_entries_below_the_noise_do_not_make_a_correct_backward_suspicious(shape):
    """In a large batch some entries of dx are tiny; their relative error is noise. They are
    left out (and counted), so a correct backward is called correct."""
    x = np.random.default_rng(1).normal(2.0, 3.0, size=shape)
    report = check_layer_gradients(bn.batchnorm_forward, bn.batchnorm_backward, x, np.ones(shape[1]), np.zeros(shape[1]))
    assert report.passed, str(report)
    assert report.left_out["dx"] > 0 and f"of {x.size} entries below" in str(report)
    assert report.absolute_errors["dx"] < report.noise


# --- bad input --------------------------------------------------------------------------------


def test_rel_error_of_empty_arrays_is_a_clear_error():
    with pytest.raises(ValueError, match="rel_error needs at least one value.*shape \\(0,\\)"):
        rel_error(np.zeros(0), np.zeros(0))


def test_numerical_gradient_refuses_a_dout_of_the_wrong_shape(rng):
    x = rng.normal(size=(3, 4))
    for dout in (np.ones(4), np.ones((1, 4)), np.ones((4, 3)), 1.0):
        with pytest.raises(ValueError, match=r"dout must have the shape of f\(x\), \(3, 4\)"):
            numerical_gradient(lambda v: v**2, x, dout)
    # a scalar function with a scalar dout is fine
    grad = numerical_gradient(lambda v: np.sum(v**2), x, 1.0)
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-8)


def test_a_backward_that_returns_nan_is_never_left_out_or_passed(rng):
    def backward_with_nan(dout, cache):
        dx, dgamma, dbeta = bn.batchnorm_backward(dout, cache)
        dx[0, 0] = np.nan
        return dx, dgamma, dbeta

    report = check_layer_gradients(bn.batchnorm_forward, backward_with_nan, rng.normal(size=(6, 3)), np.ones(3), np.zeros(3))
    assert not report.passed and "WRONG" in str(report).splitlines()[0]
