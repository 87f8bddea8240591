"""The numpy reference (helpers.bn) against torch, in float64, to 1e-9 or better."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import bn

ATOL = 1e-9  # the bar; in practice the differences are ~1e-15

SHAPES_2D = [(2, 1), (2, 7), (3, 4), (16, 10), (60, 100), (257, 3)]
SHAPES_4D = [(2, 1, 1, 1), (1, 3, 1, 2), (2, 3, 5, 7), (4, 8, 3, 3), (3, 2, 9, 1), (5, 6, 7, 11)]


def random_case(rng, shape):
    channels = shape[1]
    x = rng.normal(loc=rng.uniform(-5, 5), scale=rng.uniform(0.1, 10), size=shape)
    gamma = rng.normal(size=channels)
    beta = rng.normal(size=channels)
    dout = rng.normal(size=shape)
    return x, gamma, beta, dout


def torch_training_forward_backward(x, gamma, beta, dout):
    """torch.nn.functional.batch_norm in training mode, and autograd's gradients."""
    xt, gt, bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, gamma, beta))
    out = F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("shape", SHAPES_2D)
@pytest.mark.parametrize("backward", [bn.batchnorm_backward, bn.batchnorm_backward_compact])
def test_2d_forward_and_backward_match_torch(rng, shape, backward):
    x, gamma, beta, dout = random_case(rng, shape)
    out, cache = bn.batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = backward(dout, cache)
    t_out, t_dx, t_dgamma, t_dbeta = torch_training_forward_backward(x, gamma, beta, dout)
    np.testing.assert_allclose(out, t_out, rtol=0, atol=ATOL)
    np.testing.assert_allclose(dx, t_dx, rtol=0, atol=ATOL)
    np.testing.assert_allclose(dgamma, t_dgamma, rtol=0, atol=ATOL)
    np.testing.assert_allclose(dbeta, t_dbeta, rtol=0, atol=ATOL)


@pytest.mark.parametrize("shape", SHAPES_4D)
def test_spatial_forward_and_backward_match_torch(rng, shape):
    x, gamma, beta, dout = random_case(rng, shape)
    out, cache = bn.spatial_batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = bn.spatial_batchnorm_backward(dout, cache)
    t_out, t_dx, t_dgamma, t_dbeta = torch_training_forward_backward(x, gamma, beta, dout)
    assert out.shape == x.shape and dx.shape == x.shape
    np.testing.assert_allclose(out, t_out, rtol=0, atol=ATOL)
    np.testing.assert_allclose(dx, t_dx, rtol=0, atol=ATOL)
    np.testing.assert_allclose(dgamma, t_dgamma, rtol=0, atol=ATOL)
    np.testing.assert_allclose(dbeta, t_dbeta, rtol=0, atol=ATOL)


@pytest.mark.parametrize("shape", [(1, 4), (5, 3), (1, 2, 3, 3), (2, 3, 4, 5)])
def test_inference_matches_torch_eval(rng, shape):
    x, gamma, beta, _ = random_case(rng, shape)
    channels = shape[1]
    running_mean = rng.normal(size=channels)
    running_var = rng.uniform(0.1, 3.0, size=channels)
    out = bn.batchnorm_inference(x, gamma, beta, running_mean, running_var)
    expected = F.batch_norm(
        torch.tensor(x), torch.tensor(running_mean), torch.tensor(running_var),
        torch.tensor(gamma), torch.tensor(beta), training=False, eps=1e-5,
    ).numpy()
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)


def test_update_running_stats_matches_one_torch_step(rng):
    x = rng.normal(2.0, 3.0, size=(8, 5))
    running_mean, running_var = rng.normal(size=5), rng.uniform(0.5, 2, size=5)
    t_mean, t_var = torch.tensor(running_mean), torch.tensor(running_var)
    F.batch_norm(torch.tensor(x), t_mean, t_var, training=True, momentum=0.3, eps=1e-5)
    new_mean, new_var = bn.update_running_stats(
        running_mean, running_var, x.mean(axis=0), x.var(axis=0), n=8, momentum=0.3
    )
    np.testing.assert_allclose(new_mean, t_mean.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(new_var, t_var.numpy(), rtol=0, atol=ATOL)


def test_update_running_stats_returns_new_arrays():
    running_mean, running_var = np.zeros(3), np.ones(3)
    new_mean, new_var = bn.update_running_stats(running_mean, running_var, np.ones(3), np.ones(3), n=4)
    assert new_mean is not running_mean and new_var is not running_var
    np.testing.assert_array_equal(running_mean, 0.0)
    np.testing.assert_array_equal(running_var, 1.0)
    np.testing.assert_allclose(new_var, 0.9 + 0.1 * 4 / 3)


@pytest.mark.parametrize("momentum", [0.1, 0.01, None])
@pytest.mark.parametrize("shape", [(6, 4), (2, 3), (3, 4, 5, 5), (2, 2, 1, 3)])
def test_layer_running_stats_follow_torch_over_many_batches(rng, momentum, shape):
    channels = shape[1]
    ours = bn.BatchNorm(channels, momentum=momentum)
    theirs = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
        channels, momentum=momentum, dtype=torch.float64
    )
    ours.gamma = rng.normal(size=channels)
    ours.beta = rng.normal(size=channels)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.gamma))
        theirs.bias.copy_(torch.tensor(ours.beta))

    for batch in range(12):  # batches drift in mean and scale, so the estimates keep moving
        x = rng.normal(loc=batch * 0.5, scale=1 + batch, size=shape)
        out = ours(x)
        t_out = theirs(torch.tensor(x)).detach().numpy()
        np.testing.assert_allclose(out, t_out, rtol=0, atol=ATOL)
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=0, atol=ATOL)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=0, atol=ATOL)
        assert ours.num_batches_tracked == theirs.num_batches_tracked.item() == batch + 1

    ours.eval()
    theirs.eval()
    x = rng.normal(size=(1,) + shape[1:])  # a batch of one is fine at inference
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=0, atol=ATOL)
    assert ours.num_batches_tracked == 12  # eval mode updates nothing


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 4)])
@pytest.mark.parametrize("training", [True, False])
def test_layer_backward_matches_autograd(rng, shape, training):
    channels = shape[1]
    x, gamma, beta, dout = random_case(rng, shape)
    ours = bn.BatchNorm(channels)
    ours.gamma, ours.beta = gamma, beta
    ours.running_mean, ours.running_var = rng.normal(size=channels), rng.uniform(0.5, 2, channels)
    theirs = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
        channels, dtype=torch.float64
    )
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(gamma))
        theirs.bias.copy_(torch.tensor(beta))
        theirs.running_mean.copy_(torch.tensor(ours.running_mean))
        theirs.running_var.copy_(torch.tensor(ours.running_var))
    ours.train(training)
    theirs.train(training)

    xt = torch.tensor(x, requires_grad=True)
    theirs(xt).backward(torch.tensor(dout))
    ours(x)
    dx = ours.backward(dout)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours.dgamma, theirs.weight.grad.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours.dbeta, theirs.bias.grad.numpy(), rtol=0, atol=ATOL)


def eval_bn(channels, rng, dims):
    layer = (torch.nn.BatchNorm1d if dims == 2 else torch.nn.BatchNorm2d)(channels, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(rng.normal(size=channels)))
        layer.bias.copy_(torch.tensor(rng.normal(size=channels)))
        layer.running_mean.copy_(torch.tensor(rng.normal(size=channels)))
        layer.running_var.copy_(torch.tensor(rng.uniform(0.2, 4.0, size=channels)))
    return layer.eval()


def fold_with_ours(layer, norm):
    bias = None if layer.bias is None else layer.bias.detach().numpy()
    return bn.fold_batchnorm(
        layer.weight.detach().numpy(), bias, norm.weight.detach().numpy(), norm.bias.detach().numpy(),
        norm.running_mean.numpy(), norm.running_var.numpy(), eps=norm.eps,
    )


@pytest.mark.parametrize("bias", [True, False])
def test_fold_conv_matches_fuse_conv_bn_eval(rng, bias):
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    conv = torch.nn.Conv2d(3, 6, 3, padding=1, bias=bias, dtype=torch.float64).eval()
    norm = eval_bn(6, rng, dims=4)
    weight, folded_bias = fold_with_ours(conv, norm)
    fused = fuse_conv_bn_eval(conv, norm)
    np.testing.assert_allclose(weight, fused.weight.detach().numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(folded_bias, fused.bias.detach().numpy(), rtol=0, atol=ATOL)

    x = torch.tensor(rng.normal(size=(2, 3, 7, 5)))
    expected = norm(conv(x)).detach().numpy()
    ours = F.conv2d(x, torch.tensor(weight), torch.tensor(folded_bias), padding=1).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("bias", [True, False])
def test_fold_linear_matches_eval_linear_then_bn(rng, bias):
    from torch.nn.utils.fusion import fuse_linear_bn_eval

    linear = torch.nn.Linear(4, 5, bias=bias, dtype=torch.float64).eval()
    norm = eval_bn(5, rng, dims=2)
    weight, folded_bias = fold_with_ours(linear, norm)
    x = torch.tensor(rng.normal(size=(7, 4)))
    expected = norm(linear(x)).detach().numpy()
    np.testing.assert_allclose(x.numpy() @ weight.T + folded_bias, expected, rtol=0, atol=ATOL)
    fused = fuse_linear_bn_eval(linear, norm)
    np.testing.assert_allclose(weight, fused.weight.detach().numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(folded_bias, fused.bias.detach().numpy(), rtol=0, atol=ATOL)
