"""helpers.renorm (Batch Renormalization, Ioffe 2017) in float64: equal to BN when r = 1 and
d = 0 (against helpers.bn and torch), the backward against centered differences with r and d
held fixed and against torch autograd with r and d detached (1e-9), the running statistics and
the inference transform, and bad input."""

import numpy as np
import pytest
import torch

from helpers.bn import batchnorm_backward_compact, batchnorm_forward
from helpers.gradcheck import check_layer_gradients, numerical_gradient, rel_error
from helpers.renorm import (
    batch_renorm_backward,
    batch_renorm_forward,
    batch_renorm_inference,
    renorm_corrections,
    renormalize,
    update_renorm_statistics,
)

TOL = 1e-9


def layer(rng, n=8, d=5, shift=2.0):
    x = shift + rng.normal(scale=rng.uniform(0.5, 3.0, d), size=(n, d))
    return (x, rng.uniform(0.5, 2.0, d), rng.normal(size=d),
            rng.normal(size=d), rng.uniform(0.5, 3.0, d))  # x, gamma, beta, running mean, std


def test_with_r_max_1_and_d_max_0_it_is_batch_normalization(rng):
    x, gamma, beta, mean, std = layer(rng)
    out, cache = batch_renorm_forward(x, gamma, beta, mean, std, r_max=1.0, d_max=0.0)
    bn_out, bn_cache = batchnorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out, bn_out, rtol=0, atol=TOL)
    torch_out = torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(gamma),
                                               torch.from_numpy(beta), training=True).numpy()
    np.testing.assert_allclose(out, torch_out, rtol=0, atol=TOL)
    assert np.all(cache.r == 1) and np.all(cache.d == 0)
    dout = rng.normal(size=x.shape)
    for ours, theirs in zip(batch_renorm_backward(dout, cache), batchnorm_backward_compact(dout, bn_cache)):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)


def test_with_running_statistics_equal_to_the_batch_r_is_1_and_d_is_0(rng):
    x, gamma, beta, _, _ = layer(rng)
    mean, std = x.mean(axis=0), np.sqrt(x.var(axis=0) + 1e-5)
    out, cache = batch_renorm_forward(x, gamma, beta, mean, std, r_max=3.0, d_max=5.0)
    np.testing.assert_allclose(cache.r, 1, rtol=1e-12)
    np.testing.assert_allclose(cache.d, 0, atol=1e-12)
    np.testing.assert_allclose(out, batchnorm_forward(x, gamma, beta)[0], rtol=0, atol=TOL)


def test_unclipped_the_training_output_is_the_inference_output(rng):
    x, gamma, beta, mean, std = layer(rng)
    out, cache = batch_renorm_forward(x, gamma, beta, mean, std, r_max=1e6, d_max=1e6)
    np.testing.assert_allclose(out, batch_renorm_inference(x, gamma, beta, mean, std), rtol=0, atol=TOL)


def test_the_corrections_are_clipped():
    r, d = renorm_corrections([10.0, 0.0, -10.0], [5.0, 1.0, 0.1], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0],
                              r_max=3.0, d_max=5.0)
    np.testing.assert_array_equal(r, [3.0, 1.0, 1 / 3])
    np.testing.assert_array_equal(d, [5.0, 0.0, -5.0])


def test_backward_is_the_gradient_with_r_and_d_held_fixed(rng):
    x, gamma, beta, mean, std = layer(rng)
    _, cache = batch_renorm_forward(x, gamma, beta, mean, std, r_max=2.0, d_max=1.0)

    def forward(x, gamma, beta):
        return renormalize(x, gamma, beta, cache.r, cache.d)

    report = check_layer_gradients(forward, batch_renorm_backward, x, gamma, beta)
    assert report.passed, report


def test_backward_agrees_with_torch_autograd_with_r_and_d_detached(rng):
    x, gamma, beta, mean, std = layer(rng, n=6, d=4)
    dout = rng.normal(size=x.shape)
    out, cache = batch_renorm_forward(x, gamma, beta, mean, std, r_max=1.5, d_max=0.3)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    mu = xt.mean(0)
    sigma = torch.sqrt(xt.var(0, unbiased=False) + 1e-5)
    r = (sigma / torch.from_numpy(std)).clamp(1 / 1.5, 1.5).detach()
    d = ((mu - torch.from_numpy(mean)) / torch.from_numpy(std)).clamp(-0.3, 0.3).detach()
    yt = gt * ((xt - mu) / sigma * r + d) + bt
    yt.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=0, atol=TOL)
    for ours, theirs in zip(batch_renorm_backward(dout, cache), (xt.grad, gt.grad, bt.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=TOL)


def test_the_full_gradient_differs_unless_both_corrections_are_clipped(rng):
    """r and d depend on x; the paper's backward ignores that. Where both sit at a clipping bound
    they do not change with x, and the backward is the true gradient of the forward."""
    x, gamma, beta, _, _ = layer(rng, n=6, d=3)
    dout = rng.normal(size=x.shape)
    cases = {"unclipped": (x.mean(axis=0) + 0.1, np.sqrt(x.var(axis=0)) * 1.2, 10.0, 10.0),
             "clipped": (x.mean(axis=0) + 50.0, np.sqrt(x.var(axis=0)) * 20.0, 2.0, 1.0)}
    errors = {}
    for name, (mean, std, r_max, d_max) in cases.items():
        _, cache = batch_renorm_forward(x, gamma, beta, mean, std, r_max, d_max)
        numeric = numerical_gradient(
            lambda v, mean=mean, std=std, r_max=r_max, d_max=d_max:
            batch_renorm_forward(v, gamma, beta, mean, std, r_max, d_max)[0], x.copy(), dout)
        errors[name] = rel_error(batch_renorm_backward(dout, cache)[0], numeric)
    assert errors["clipped"] < 1e-7 and errors["unclipped"] > 1e-3, errors


def test_running_statistics_follow_the_batch_ones(rng):
    mean, std = update_renorm_statistics([0.0, 1.0], [1.0, 2.0], [1.0, 3.0], [3.0, 1.0], momentum=0.25)
    np.testing.assert_allclose(mean, [0.25, 1.5])
    np.testing.assert_allclose(std, [1.5, 1.75])
    with pytest.raises(ValueError, match="momentum"):
        update_renorm_statistics([0.0], [1.0], [0.0], [1.0], momentum=1.5)


def test_bad_input_is_refused(rng):
    x, gamma, beta, mean, std = layer(rng)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        batch_renorm_forward(x[None], gamma, beta, mean, std)
    with pytest.raises(ValueError, match="at least 2"):
        batch_renorm_forward(x[:1], gamma, beta, mean, std)
    with pytest.raises(ValueError, match="r_max"):
        batch_renorm_forward(x, gamma, beta, mean, std, r_max=0.5)
    with pytest.raises(ValueError, match="d_max"):
        batch_renorm_forward(x, gamma, beta, mean, std, d_max=-1.0)
    with pytest.raises(ValueError, match="running_std must be positive"):
        batch_renorm_forward(x, gamma, beta, mean, -std)
    with pytest.raises(ValueError, match="gamma must have shape"):
        batch_renorm_forward(x, gamma[:2], beta, mean, std)
    with pytest.raises(ValueError, match="eps"):
        renormalize(x, gamma, beta, np.ones(5), np.zeros(5), eps=0.0)
    with pytest.raises(ValueError, match="dout"):
        batch_renorm_backward(np.zeros((2, 2)), batch_renorm_forward(x, gamma, beta, mean, std)[1])
