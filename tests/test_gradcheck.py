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
