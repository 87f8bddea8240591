"""The rest of torch's BatchNorm API on our numpy ``BatchNorm`` layer, each behaviour checked
against ``torch.nn.BatchNorm1d / BatchNorm2d`` itself in float64, forward and backward, to 1e-9.

affine=False, track_running_stats=False, reset_running_stats() / reset_parameters(), (N, C, L)
input as BatchNorm1d takes it, an empty batch, and a mode switch between forward and backward.
"""

import numpy as np
import pytest
import torch

from helpers import bn

ATOL = 1e-9


def torch_layer(shape, **options):
    cls = torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d
    return cls(shape[1], dtype=torch.float64, **options)


def copy_state(ours, theirs, rng):
    """Random gamma, beta and running statistics, the same in both layers."""
    channels = ours.num_features
    if ours.affine:
        ours.gamma, ours.beta = rng.normal(size=channels), rng.normal(size=channels)
    if ours.track_running_stats:
        ours.running_mean = rng.normal(size=channels)
        ours.running_var = rng.uniform(0.5, 2.0, size=channels)
    with torch.no_grad():
        if ours.affine:
            theirs.weight.copy_(torch.tensor(ours.gamma))
            theirs.bias.copy_(torch.tensor(ours.beta))
        if ours.track_running_stats:
            theirs.running_mean.copy_(torch.tensor(ours.running_mean))
            theirs.running_var.copy_(torch.tensor(ours.running_var))


def assert_same_state(ours, theirs):
    if ours.track_running_stats:
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=0, atol=ATOL)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=0, atol=ATOL)
        assert ours.num_batches_tracked == theirs.num_batches_tracked.item()
    else:
        assert theirs.running_mean is None and theirs.running_var is None
        assert ours.running_mean is None and ours.running_var is None
        assert ours.num_batches_tracked is None and theirs.num_batches_tracked is None


def forward_backward(ours, theirs, x, dout):
    """One forward and backward through both layers; returns nothing, asserts agreement."""
    xt = torch.tensor(x, requires_grad=True)
    t_out = theirs(xt)
    t_out.backward(torch.tensor(dout))
    out = ours(x)
    dx = ours.backward(dout)
    assert out.shape == x.shape and dx.shape == x.shape
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=ATOL)
    if ours.affine:
        np.testing.assert_allclose(ours.dgamma, theirs.weight.grad.numpy(), rtol=0, atol=ATOL)
        np.testing.assert_allclose(ours.dbeta, theirs.bias.grad.numpy(), rtol=0, atol=ATOL)
        theirs.weight.grad = theirs.bias.grad = None
    else:
        assert theirs.weight is None and ours.gamma is None and ours.dgamma is None
    assert_same_state(ours, theirs)


SHAPES = [(6, 3), (4, 3, 5), (3, 3, 4, 2)]  # BatchNorm1d (N, C), BatchNorm1d (N, C, L), BatchNorm2d


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track_running_stats", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_options_follow_torch_in_train_and_eval(rng, shape, affine, track_running_stats, momentum):
    options = dict(affine=affine, track_running_stats=track_running_stats, momentum=momentum)
    ours = bn.BatchNorm(shape[1], **options)
    theirs = torch_layer(shape, **options)
    assert ours.affine is affine and ours.track_running_stats is track_running_stats
    assert_same_state(ours, theirs)
    copy_state(ours, theirs, rng)
    for batch in range(4):
        x = rng.normal(loc=batch, scale=1 + batch, size=shape)
        forward_backward(ours, theirs, x, rng.normal(size=shape))
    ours.eval()
    theirs.eval()
    for _ in range(2):  # eval: running statistics, or batch statistics without them
        x = rng.normal(loc=1.0, scale=2.0, size=shape)
        forward_backward(ours, theirs, x, rng.normal(size=shape))


def test_without_running_statistics_eval_mode_needs_a_batch_too():
    ours = bn.BatchNorm(3, track_running_stats=False).eval()
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.BatchNorm1d(3, track_running_stats=False).eval()(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="more than one value per feature"):
        ours(np.zeros((1, 3)))


@pytest.mark.parametrize("shape", [(1, 3, 1), (1, 3, 1, 1)])
def test_one_value_per_channel_is_refused_in_training_like_torch(shape):
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch_layer(shape)(torch.zeros(shape, dtype=torch.float64))
    with pytest.raises(ValueError, match="more than one value per feature"):
        bn.BatchNorm(3)(np.zeros(shape))
    bn.BatchNorm(3)(np.zeros((1, 3, 2)))  # (N, C, L) with N * L = 2 is fine, as in torch
    torch.nn.BatchNorm1d(3)(torch.zeros(1, 3, 2))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track_running_stats", [True, False])
def test_reset_running_stats_and_reset_parameters_follow_torch(rng, affine, track_running_stats):
    options = dict(affine=affine, track_running_stats=track_running_stats)
    ours, theirs = bn.BatchNorm(4, **options), torch.nn.BatchNorm1d(4, dtype=torch.float64, **options)
    copy_state(ours, theirs, rng)
    x = rng.normal(size=(5, 4))
    ours(x)
    theirs(torch.tensor(x))
    gamma_before = None if ours.gamma is None else ours.gamma.copy()

    ours.reset_running_stats()
    theirs.reset_running_stats()
    assert_same_state(ours, theirs)
    if affine:  # reset_running_stats leaves gamma and beta alone
        np.testing.assert_array_equal(ours.gamma, gamma_before)
        np.testing.assert_allclose(ours.gamma, theirs.weight.detach().numpy(), rtol=0, atol=0)

    copy_state(ours, theirs, rng)
    ours.reset_parameters()
    theirs.reset_parameters()
    assert_same_state(ours, theirs)
    if affine:
        np.testing.assert_array_equal(ours.gamma, theirs.weight.detach().numpy())
        np.testing.assert_array_equal(ours.beta, theirs.bias.detach().numpy())
        np.testing.assert_array_equal(ours.gamma, 1.0)
        np.testing.assert_array_equal(ours.beta, 0.0)
    if track_running_stats:
        np.testing.assert_array_equal(ours.running_mean, 0.0)
        np.testing.assert_array_equal(ours.running_var, 1.0)
        assert ours.num_batches_tracked == 0


EMPTY_SHAPES = [(0, 3), (0, 3, 5), (2, 3, 0), (0, 3, 2, 2), (2, 3, 0, 4)]


@pytest.mark.parametrize("shape", EMPTY_SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("track_running_stats", [True, False])
def test_an_empty_batch_is_handled_as_torch_does(rng, shape, training, momentum, track_running_stats):
    """torch 2.13: an empty batch gives an empty output and zero dgamma / dbeta; in training
    the running statistics stay as they are but num_batches_tracked still counts it."""
    options = dict(momentum=momentum, track_running_stats=track_running_stats)
    ours, theirs = bn.BatchNorm(3, **options), torch_layer(shape, **options)
    copy_state(ours, theirs, rng)
    if track_running_stats:
        ours.num_batches_tracked = 5
        theirs.num_batches_tracked.fill_(5)
    ours.train(training)
    theirs.train(training)
    forward_backward(ours, theirs, np.zeros(shape), np.zeros(shape))
    np.testing.assert_array_equal(ours.dgamma, 0.0)
    np.testing.assert_array_equal(ours.dbeta, 0.0)
    if track_running_stats:
        assert ours.num_batches_tracked == (6 if training else 5)


def test_an_empty_batch_counts_in_the_cumulative_average_as_in_torch(rng):
    ours, theirs = bn.BatchNorm(3, momentum=None), torch.nn.BatchNorm1d(3, momentum=None, dtype=torch.float64)
    for x in (rng.normal(size=(4, 3)), np.zeros((0, 3)), rng.normal(2.0, 3.0, size=(4, 3))):
        ours(x)
        theirs(torch.tensor(x))
        assert_same_state(ours, theirs)
    assert ours.num_batches_tracked == 3


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("first, then", [("train", "eval"), ("eval", "train")])
def test_backward_differentiates_the_forward_that_ran_whatever_the_mode_now(rng, shape, first, then):
    """As in torch: the gradient belongs to the forward pass that made the output, in the mode
    it ran in; switching the mode before backward changes nothing."""
    ours, theirs = bn.BatchNorm(shape[1]), torch_layer(shape)
    copy_state(ours, theirs, rng)
    x, dout = rng.normal(1.0, 2.0, size=shape), rng.normal(size=shape)
    for layer in (ours, theirs):
        layer.train(first == "train")
    xt = torch.tensor(x, requires_grad=True)
    t_out = theirs(xt)
    out = ours(x)
    for layer in (ours, theirs):
        layer.train(then == "train")
    t_out.backward(torch.tensor(dout))
    dx = ours.backward(dout)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours.dgamma, theirs.weight.grad.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours.dbeta, theirs.bias.grad.numpy(), rtol=0, atol=ATOL)


def test_three_dimensional_input_is_batch_norm_over_n_and_l(rng):
    """(N, C, L) is normalized per channel over N and L: the same as (N * L, C) rows."""
    x = rng.normal(size=(4, 3, 5))
    rows = x.transpose(0, 2, 1).reshape(-1, 3)
    out = bn.BatchNorm(3)(x)
    expected, _ = bn.batchnorm_forward(rows, np.ones(3), np.zeros(3))
    np.testing.assert_allclose(out.transpose(0, 2, 1).reshape(-1, 3), expected, rtol=0, atol=1e-12)


def test_the_defaults_are_unchanged():
    layer = bn.BatchNorm(3)
    assert layer.affine and layer.track_running_stats and layer.training
    assert repr(layer) == "BatchNorm(3, eps=1e-05, momentum=0.1, training=True)"
    assert "affine=False" in repr(bn.BatchNorm(3, affine=False))
    assert "track_running_stats=False" in repr(bn.BatchNorm(3, track_running_stats=False))
