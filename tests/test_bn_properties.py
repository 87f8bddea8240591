"""Properties that hold for any input (hypothesis: random shapes, scales and offsets)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import bn

EPS = 1e-5


@st.composite
def batches(draw, min_rows=2):
    """(x, gamma, beta, dout): x (N, D) with per-feature offsets up to 1e3 and scales 1e-2..1e2."""
    n = draw(st.integers(min_rows, 40))
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    offset = draw(st.floats(-1e3, 1e3))
    scale = draw(st.floats(1e-2, 1e2))
    x = offset + scale * rng.standard_normal((n, d))
    gamma = rng.uniform(0.1, 3.0, size=d) * rng.choice([-1, 1], size=d)
    beta = rng.normal(size=d)
    dout = rng.standard_normal((n, d))
    return x, gamma, beta, dout


@settings(max_examples=60, deadline=None)
@given(batches())
def test_output_mean_is_beta_and_std_is_gamma_times_eps_correction(case):
    x, gamma, beta, _ = case
    out, _ = bn.batchnorm_forward(x, gamma, beta, EPS)
    var = x.var(axis=0)
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-9)
    # not exactly |gamma|: eps shrinks the spread by sqrt(var / (var + eps))
    np.testing.assert_allclose(out.std(axis=0), np.abs(gamma) * np.sqrt(var / (var + EPS)), rtol=1e-7)


@settings(max_examples=60, deadline=None)
@given(batches(), st.floats(-1e4, 1e4))
def test_adding_a_constant_to_x_changes_nothing(case, shift):
    x, gamma, beta, _ = case
    out, _ = bn.batchnorm_forward(x, gamma, beta)
    shifted, _ = bn.batchnorm_forward(x + shift, gamma, beta)
    np.testing.assert_allclose(shifted, out, atol=1e-6 * (1 + abs(shift) / x.std()))


@settings(max_examples=60, deadline=None)
@given(batches(), st.floats(0.5, 1e3))
def test_positive_scaling_of_x_changes_nothing_up_to_eps(case, a):
    x, gamma, beta, _ = case
    # scaling is an exact invariance when eps is negligible next to the variance; eps breaks
    # it only by O(eps / var) (notebook 03 measures that)
    out, _ = bn.batchnorm_forward(x, gamma, beta, eps=1e-30)
    scaled, _ = bn.batchnorm_forward(a * x, gamma, beta, eps=1e-30)
    np.testing.assert_allclose(scaled, out, atol=1e-6)


def rounding_scale(dout, cache):
    """(D,) what rounding errors in dx are relative to. Identities like sum(dx) = 0 hold to
    rounding error relative to the size of the terms that cancel, sum |gamma * dout| / std,
    magnified by |mean| / std: x - mean loses that many digits when the mean is large."""
    cancelling_terms = np.abs(cache.gamma * cache.inv_std * dout).sum(axis=0)
    return cancelling_terms * (1 + np.abs(cache.mu) * cache.inv_std)


@settings(max_examples=60, deadline=None)
@given(batches())
def test_input_gradient_sums_to_zero(case):
    x, gamma, beta, dout = case
    _, cache = bn.batchnorm_forward(x, gamma, beta)
    for backward in (bn.batchnorm_backward, bn.batchnorm_backward_compact):
        dx, _, _ = backward(dout, cache)
        assert np.all(np.abs(dx.sum(axis=0)) <= 1e-13 * rounding_scale(dout, cache))


@settings(max_examples=60, deadline=None)
@given(batches())
def test_input_gradient_is_orthogonal_to_x_hat_up_to_the_eps_term(case):
    """sum(dx * x_hat) is 0 only when eps = 0. With eps, sum(x_hat**2) = N var / (var + eps),
    and the closed form gives sum(dx * x_hat) = gamma * dgamma * eps / (var + eps)**1.5."""
    x, gamma, beta, dout = case
    for eps in (1e-5, 1e-30):
        _, cache = bn.batchnorm_forward(x, gamma, beta, eps)
        for backward in (bn.batchnorm_backward, bn.batchnorm_backward_compact):
            dx, dgamma, _ = backward(dout, cache)
            predicted = gamma * dgamma * eps / (cache.var + eps) ** 1.5
            error = np.abs((dx * cache.x_hat).sum(axis=0) - predicted)
            assert np.all(error <= 1e-13 * rounding_scale(dout, cache) * len(x))


@settings(max_examples=40, deadline=None)
@given(batches())
def test_node_by_node_and_closed_form_agree(case):
    x, gamma, beta, dout = case
    _, cache = bn.batchnorm_forward(x, gamma, beta)
    # rounding differs between the two orders of operations: compare on the scale of the
    # terms that are summed, |gamma * dout / sqrt(var + eps)|
    scale = np.abs(gamma * dout * cache.inv_std).max()
    for a, b in zip(bn.batchnorm_backward(dout, cache), bn.batchnorm_backward_compact(dout, cache)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10 * max(scale, np.abs(b).max()))


@settings(max_examples=40, deadline=None)
@given(batches())
def test_identity_recovery(case):
    x, _, _, _ = case
    gamma = np.sqrt(x.var(axis=0) + EPS)
    beta = x.mean(axis=0)
    out, _ = bn.batchnorm_forward(x, gamma, beta, EPS)
    np.testing.assert_allclose(out, x, rtol=1e-9, atol=1e-9 * np.abs(x).max())


def test_float32_with_huge_mean_and_tiny_spread_stays_accurate():
    """Mean 1e4, std 1e-2 in float32: E[x^2] - E[x]^2 would give a negative variance here."""
    rng = np.random.default_rng(0)
    x = (1e4 + 1e-2 * rng.standard_normal((1000, 4))).astype(np.float32)
    naive_var = (x * x).mean(axis=0) - x.mean(axis=0) ** 2
    assert np.any(naive_var <= 0)  # the one-pass formula is hopeless here

    gamma, beta = np.ones(4, np.float32), np.zeros(4, np.float32)
    out, cache = bn.batchnorm_forward(x, gamma, beta)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    reference, _ = bn.batchnorm_forward(x.astype(np.float64), gamma, beta)
    np.testing.assert_allclose(out, reference, atol=1e-5)
    np.testing.assert_allclose(cache.var, x.astype(np.float64).var(axis=0), rtol=1e-5)
    dx, _, _ = bn.batchnorm_backward_compact(rng.standard_normal(x.shape).astype(np.float32), cache)
    assert dx.dtype == np.float32 and np.all(np.isfinite(dx))


def test_float32_dtype_is_kept_everywhere():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32)
    out, cache = bn.spatial_batchnorm_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32))
    dx, dgamma, dbeta = bn.spatial_batchnorm_backward(np.ones_like(x), cache)
    assert out.dtype == dx.dtype == np.float32
    inference = bn.batchnorm_inference(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))
    assert inference.dtype == np.float32
