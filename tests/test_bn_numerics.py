"""Numbers at the edges: NaN / inf input, half precision, and values whose squares overflow.

A training batch with NaN or inf is refused with a ValueError that counts them and names their
features, and a layer's running statistics stay as they were; inference may pass NaN through
but never makes NaN out of finite input. float16 is computed in float32, as torch does on the
CPU, and returned as float16. Huge finite values are normalized correctly (BN is scale
invariant), never collapsed to beta.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import bn

ONE, ZERO = np.ones(4), np.zeros(4)


def batch_with(values, rng, shape=(8, 4)):
    """A normal batch with the given {(row, feature): value} entries."""
    x = rng.normal(size=shape)
    for index, value in values.items():
        x[index] = value
    return x


# --- non-finite training batches ------------------------------------------------------------


@pytest.mark.parametrize("forward", [
    lambda x: bn.batchnorm_forward(x, ONE, ZERO),
    lambda x: bn.spatial_batchnorm_forward(x[:, :, None, None] * np.ones((1, 1, 2, 3)), ONE, ZERO),
    lambda x: bn.BatchNorm(4)(x),
    lambda x: bn.BatchNorm(4)(x[:, :, None] * np.ones((1, 1, 5))),
    lambda x: bn.BatchNorm(4, track_running_stats=False).eval()(x),
])
def test_a_non_finite_training_batch_is_refused_naming_counts_and_features(rng, forward):
    x = batch_with({(1, 0): np.nan, (5, 0): np.nan, (2, 3): np.inf, (3, 2): -np.inf}, rng)
    with pytest.raises(ValueError) as raised:
        forward(x)
    message = str(raised.value)
    assert " NaN" in message and " inf" in message, message
    assert "NaN in feature 0" in message and "inf in features 2, 3" in message, message


def test_the_count_of_non_finite_values_is_exact(rng):
    x = batch_with({(1, 0): np.nan, (5, 0): np.nan, (2, 3): np.inf, (3, 2): -np.inf}, rng)
    with pytest.raises(ValueError, match="2 NaN and 2 inf"):
        bn.batchnorm_forward(x, ONE, ZERO)


def test_a_non_finite_batch_leaves_the_running_statistics_untouched(rng):
    layer = bn.BatchNorm(4)
    for _ in range(3):
        layer(rng.normal(size=(8, 4)))
    state = (layer.running_mean.copy(), layer.running_var.copy(), layer.num_batches_tracked)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="NaN|inf"):
            layer(batch_with({(0, 1): bad}, rng))
    np.testing.assert_array_equal(layer.running_mean, state[0])
    np.testing.assert_array_equal(layer.running_var, state[1])
    assert layer.num_batches_tracked == state[2]
    layer.eval()
    assert np.isfinite(layer(rng.normal(size=(3, 4)))).all()  # eval outputs are not poisoned


def test_inference_passes_nan_through_but_makes_none_from_finite_input(rng):
    layer = bn.BatchNorm(4)
    layer(rng.normal(size=(8, 4)))
    layer.eval()
    x = batch_with({(0, 1): np.nan}, rng, shape=(3, 4))
    out = layer(x)
    assert np.isnan(out[0, 1]) and np.isfinite(np.delete(out.ravel(), 1)).all()
    torch_out = F.batch_norm(torch.tensor(x), torch.tensor(layer.running_mean),
                             torch.tensor(layer.running_var), training=False).numpy()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(torch_out))


def test_inference_with_huge_running_mean_makes_no_nan_from_finite_input():
    # scale = 1e10 and running_mean = 1e300: the one-multiply-one-add form x * scale + shift
    # overflows to inf - inf = NaN; the true output is gamma * (x - mean) / std + beta
    running_mean = np.full(2, 1e300)
    x = np.array([[1e300, 1e300], [1.0000000001e300, 0.9999999999e300]])
    out = bn.batchnorm_inference(x, np.full(2, 1e10), np.zeros(2), running_mean, np.ones(2))
    assert np.isfinite(out).all()
    expected = 1e10 * (x - running_mean) / np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-9 * np.abs(expected).max())


@pytest.mark.parametrize("name", ["gamma", "beta", "running_mean", "running_var"])
def test_inference_and_folding_refuse_non_finite_parameters(name):
    args = dict(gamma=np.ones(3), beta=np.zeros(3), running_mean=np.zeros(3), running_var=np.ones(3))
    args[name] = np.array([1.0, np.nan, 1.0])
    with pytest.raises(ValueError, match=rf"{name} .*NaN in feature 1"):
        bn.batchnorm_inference(np.ones((2, 3)), **args)
    with pytest.raises(ValueError, match=rf"{name} .*NaN in feature 1"):
        bn.fold_batchnorm(np.ones((3, 2)), None, **args)


@pytest.mark.parametrize("name", ["gamma", "beta"])
def test_training_refuses_non_finite_gamma_and_beta(rng, name):
    args = dict(gamma=np.ones(4), beta=np.zeros(4))
    args[name] = np.array([1.0, 1.0, np.inf, 1.0])
    with pytest.raises(ValueError, match=rf"{name} .*inf in feature 2"):
        bn.batchnorm_forward(rng.normal(size=(5, 4)), **args)


def test_update_running_stats_refuses_non_finite_statistics():
    good = dict(running_mean=np.zeros(3), running_var=np.ones(3), batch_mean=np.zeros(3),
                batch_var=np.ones(3), n=4)
    for name in ("running_mean", "running_var", "batch_mean", "batch_var"):
        args = dict(good)
        args[name] = np.array([0.0, 1.0, np.nan])
        with pytest.raises(ValueError, match=rf"{name} .*NaN in feature 2"):
            bn.update_running_stats(**args)


# --- half precision ---------------------------------------------------------------------------


def half_ulps(a, b):
    """|a - b| in units of float16's spacing at b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float16)
    return np.abs(a - b.astype(np.float64)) / np.spacing(np.abs(b)).astype(np.float64)


@pytest.mark.parametrize("shape", [(8, 4), (64, 16), (4, 3, 5, 5)])
@pytest.mark.parametrize("scale", [1.0, 300.0, 3000.0])
def test_float16_is_computed_in_float32_and_agrees_with_torch(rng, shape, scale):
    x = (scale * rng.standard_normal(shape) + scale / 3).astype(np.float16)
    channels = shape[1]
    gamma = rng.uniform(0.5, 2.0, channels).astype(np.float16)
    beta = rng.normal(size=channels).astype(np.float16)
    forward = bn.batchnorm_forward if len(shape) == 2 else bn.spatial_batchnorm_forward
    out, _ = forward(x, gamma, beta)
    assert out.dtype == np.float16 and np.isfinite(out).all()
    # exactly our float32 computation, rounded once to float16
    out32, _ = forward(x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32))
    np.testing.assert_array_equal(out, out32.astype(np.float16))
    # torch 2.13 on the CPU, float16 input with float32 weight and bias (a float32 module fed
    # half input, as under autocast): float16 out, statistics in float32. We agree to a rounding.
    # (With float16 weight and bias torch also rounds its saved mean and 1/std to float16, which
    # moves its output by a few float16 steps more; float32 statistics are what it computes.)
    t_out = F.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(gamma).float(),
                         torch.from_numpy(beta).float(), training=True, eps=1e-5)
    assert t_out.dtype == torch.float16
    assert half_ulps(out, t_out.numpy()).max() <= 1.0
    # and we are the exact (float64) answer rounded to float16, to a rounding
    axes = (0, 2, 3) if len(shape) == 4 else (0,)
    x64 = x.astype(np.float64)
    per_channel = (-1,) + (1,) * (x.ndim - 2)
    exact = ((x64 - x64.mean(axis=axes, keepdims=True)) / np.sqrt(x64.var(axis=axes, keepdims=True) + 1e-5)
             * gamma.astype(np.float64).reshape(per_channel) + beta.astype(np.float64).reshape(per_channel))
    assert half_ulps(exact, out).max() <= 1.0


def test_float16_backward_returns_float16_and_agrees_with_torch(rng):
    x = (300 * rng.standard_normal((16, 4))).astype(np.float16)
    dout = rng.standard_normal((16, 4)).astype(np.float16)
    gamma, beta = np.ones(4, np.float16), np.zeros(4, np.float16)
    xt, gt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, gamma, beta))
    F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5).backward(torch.from_numpy(dout))
    _, cache = bn.batchnorm_forward(x, gamma, beta)
    for backward in (bn.batchnorm_backward, bn.batchnorm_backward_compact):
        grads = backward(dout, cache)
        assert all(g.dtype == np.float16 for g in grads)
        for ours, theirs in zip(grads, (xt.grad, gt.grad, bt.grad)):
            theirs = theirs.numpy().astype(np.float64)
            np.testing.assert_allclose(ours.astype(np.float64), theirs, rtol=2e-3,
                                       atol=2e-3 * np.abs(theirs).max())


def test_float16_layer_keeps_float64_running_statistics_like_a_float32_torch_layer(rng):
    ours, theirs = bn.BatchNorm(4), torch.nn.BatchNorm1d(4)
    for _ in range(5):
        x = (300 * rng.standard_normal((16, 4))).astype(np.float16)
        out = ours(x)
        t_out = theirs(torch.from_numpy(x))
        assert out.dtype == np.float16 and t_out.dtype == torch.float16
        assert half_ulps(out, t_out.detach().numpy()).max() <= 1.0
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-5)
    ours.eval()
    theirs.eval()
    x = (300 * rng.standard_normal((3, 4))).astype(np.float16)
    out = ours(x)
    assert out.dtype == np.float16
    assert half_ulps(out, theirs(torch.from_numpy(x)).detach().numpy()).max() <= 1.0


# --- values whose squares overflow ------------------------------------------------------------


@pytest.mark.parametrize("dtype, exponent", [(np.float32, 66), (np.float32, 100), (np.float64, 665),
                                             (np.float64, 1000)])
def test_huge_values_are_normalized_correctly_never_collapsed_to_beta(rng, dtype, exponent):
    """BN(s x) = BN(x) with eps / s**2 in place of eps: with s = 2**66 (~1e20) in float32 or
    2**665 (~1e200) in float64 the squares overflow, but the output must not."""
    x = rng.normal(1.0, 2.0, size=(16, 3))
    dout = rng.normal(size=(16, 3))
    gamma, beta = rng.uniform(0.5, 2, 3), rng.normal(size=3)
    huge = (x * 2.0**exponent).astype(dtype)
    assert np.isfinite(huge).all()
    out, cache = bn.batchnorm_forward(huge, gamma, beta)
    assert out.dtype == dtype
    assert not np.allclose(out, beta)
    xt = torch.tensor(huge.astype(np.float64) / 2.0**exponent, requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    t_out = F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-300)  # eps / s**2 ~ 0
    t_out.backward(torch.tensor(dout))
    tol = 1e-9 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=0, atol=tol)
    dx, dgamma, dbeta = bn.batchnorm_backward_compact(dout.astype(dtype), cache)
    # dx scales as 1 / s (exact in powers of two); dgamma and dbeta do not scale
    np.testing.assert_allclose(dx.astype(np.float64) * 2.0**exponent, xt.grad.numpy(), rtol=0, atol=tol * 10)
    np.testing.assert_allclose(dgamma, gt.grad.numpy(), rtol=0, atol=tol * 10)
    np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=0, atol=tol * 10)


def test_huge_values_in_the_node_by_node_backward_and_the_layer_give_a_clear_error(rng):
    huge = rng.normal(size=(8, 3)) * 1e200
    _, cache = bn.batchnorm_forward(huge, np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="variance .*overflow.*batchnorm_backward_compact"):
        bn.batchnorm_backward(np.ones((8, 3)), cache)
    layer = bn.BatchNorm(3)
    with pytest.raises(ValueError, match="variance .*overflow.*running_var"):
        layer(huge)
    np.testing.assert_array_equal(layer.running_var, 1.0)
    assert layer.num_batches_tracked == 0


def test_values_that_span_more_than_the_largest_float_give_a_clear_error():
    x = np.array([[1.5e308], [-1.5e308], [1.5e308]])  # x - mean = -2e308 for the second
    with pytest.raises(ValueError, match="overflow"):
        bn.batchnorm_forward(x, np.ones(1), np.zeros(1))


def test_large_but_representable_values_keep_the_fast_path_results(rng):
    """Nothing that worked changes: a batch whose variance fits is computed as before."""
    x = rng.normal(size=(16, 3)) * 1e150
    out, cache = bn.batchnorm_forward(x, np.ones(3), np.zeros(3))
    assert np.isfinite(cache.var).all()
    np.testing.assert_allclose(out, (x - x.mean(0)) / x.std(0), rtol=0, atol=1e-12)
