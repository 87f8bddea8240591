"""Notebook 08's computations (helpers.lessons.bn_in_practice): the torch Batch Renorm against
the numpy reference (float64, 1e-9), the models' structure, the batch streams, the residual
network at initialization, the variance-shift measure, fine-tuning's freezing, the autocast probe
and the padded batch. Short runs only; the notebook test runs the experiments."""

import numpy as np
import pytest
import torch
from torch import nn

from helpers.frozen import batchnorm_modes
from helpers.lessons import bn_in_practice as lesson
from helpers.renorm import batch_renorm_backward, batch_renorm_forward, batch_renorm_inference

TOL = 1e-9


def test_batch_renorm_module_matches_the_numpy_reference(rng):
    layer = lesson.BatchRenorm1d(4, momentum=0.2, r_max=1.5, d_max=0.5).double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(rng.uniform(0.5, 2, 4)))
        layer.bias.copy_(torch.from_numpy(rng.normal(size=4)))
        layer.running_mean.copy_(torch.from_numpy(rng.normal(size=4)))
        layer.running_std.copy_(torch.from_numpy(rng.uniform(0.5, 2, 4)))
    gamma, beta = layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy()
    mean, std = layer.running_mean.numpy().copy(), layer.running_std.numpy().copy()
    x = 1.5 + 2 * rng.standard_normal((7, 4))
    dout = rng.standard_normal((7, 4))
    xt = torch.tensor(x, requires_grad=True)
    out = layer(xt)
    out.backward(torch.from_numpy(dout))
    expected, cache = batch_renorm_forward(x, gamma, beta, mean, std, r_max=1.5, d_max=0.5)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=0, atol=TOL)
    dx, dgamma, dbeta = batch_renorm_backward(dout, cache)
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=0, atol=TOL)
    np.testing.assert_allclose(layer.weight.grad.numpy(), dgamma, rtol=0, atol=TOL)
    np.testing.assert_allclose(layer.bias.grad.numpy(), dbeta, rtol=0, atol=TOL)
    np.testing.assert_allclose(layer.running_mean.numpy(), mean + 0.2 * (cache.mean - mean), rtol=1e-12)
    np.testing.assert_allclose(layer.running_std.numpy(), std + 0.2 * (cache.std - std), rtol=1e-12)
    layer.eval()
    with torch.no_grad():
        np.testing.assert_allclose(layer(torch.from_numpy(x)).numpy(),
                                   batch_renorm_inference(x, gamma, beta, layer.running_mean.numpy(),
                                                          layer.running_std.numpy()), rtol=0, atol=TOL)


def test_renorm_schedule_starts_as_bn_and_ends_at_the_limits():
    assert lesson.renorm_schedule(0, 100) == (1.0, 0.0)
    assert lesson.renorm_schedule(10, 100) == (1.0, 0.0)
    r, d = lesson.renorm_schedule(30, 100)
    assert r == pytest.approx(2.0) and d == pytest.approx(2.5)
    assert lesson.renorm_schedule(99, 100) == (3.0, 5.0)


def test_bn_mlp_places_dropout_and_norms_as_documented():
    before = lesson.bn_mlp(dropout=0.5, dropout_at="before_bn")
    after = lesson.bn_mlp(dropout=0.5, dropout_at="after_last_bn")
    kinds = [type(m).__name__ for m in before]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU",
                     "Dropout", "Linear"]
    assert [type(m).__name__ for m in after][-2:] == ["Dropout", "Linear"]
    assert sum(isinstance(m, nn.Dropout) for m in after) == 1
    assert before[0].bias is None and lesson.bn_mlp("none")[0].bias is not None
    assert isinstance(lesson.bn_mlp("renorm")[1], lesson.BatchRenorm1d)
    assert isinstance(lesson.bn_mlp("group")[1], nn.GroupNorm)
    for name, value in (("norm", "layer"), ("dropout_at", "middle")):
        with pytest.raises(ValueError, match=name):
            lesson.bn_mlp(**{name: value})
    same = [p.detach().clone() for p in lesson.bn_mlp(seed=3).parameters()]
    assert all(torch.equal(a, b) for a, b in zip(same, lesson.bn_mlp(seed=3).parameters()))


def test_skewed_batches_hold_only_the_requested_classes_and_random_ones_are_seeded():
    labels = np.repeat(np.arange(10), 30)
    batches = lesson.skewed_batches(labels, 32, 50, classes_per_batch=2, seed=1)
    assert batches.shape == (50, 32)
    assert all(len(np.unique(labels[b])) == 2 for b in batches)
    assert len(np.unique(labels[batches])) == 10  # over many steps, every class
    np.testing.assert_array_equal(lesson.random_batches(100, 4, 3, seed=2), lesson.random_batches(100, 4, 3, seed=2))
    with pytest.raises(ValueError, match="divide"):
        lesson.skewed_batches(labels, 31, 5, classes_per_batch=2)


def test_residual_blocks_start_as_the_identity_with_zero_init():
    x = torch.randn(16, 784, generator=torch.Generator().manual_seed(0))
    model = lesson.ResidualMLP(4, batchnorm=True, zero_init=True)
    streams = []
    with torch.no_grad():
        model.train()(x, record=streams)
    assert all(torch.equal(h, streams[0]) for h in streams)
    with pytest.raises(ValueError, match="batchnorm"):
        lesson.ResidualBlock(8, batchnorm=False, zero_init=True)


def test_stream_variance_grows_by_about_one_per_block_with_bn_and_leaves_the_model_alone():
    x = torch.randn(256, 784, generator=torch.Generator().manual_seed(1))
    model = lesson.ResidualMLP(8, batchnorm=True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    variances = lesson.stream_variances(model, x)
    assert variances.shape == (9,)
    assert abs(np.diff(variances).mean() - 1.0) < 0.15  # each branch adds about unit variance
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    plain = lesson.stream_variances(lesson.ResidualMLP(8, batchnorm=False), x)
    assert plain[-1] > 50 * plain[1]  # without BN it multiplies


def test_variance_shift_of_dropout_right_before_bn_is_1_minus_p():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(50))
    generator = torch.Generator().manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(400):
            model(torch.randn(64, 50, generator=generator))
    ratio = lesson.variance_shift(model, torch.randn(4000, 50, generator=generator))
    assert ratio.shape == (1,) and ratio[0] == pytest.approx(0.5, abs=0.05)  # zero-mean input: 1 - p
    assert model.training  # modes restored


def test_fine_tune_head_trains_only_the_classifier_and_frozen_bn_keeps_its_statistics():
    model = lesson.bn_mlp(hidden=(16,))
    x = torch.rand(40, 784, generator=torch.Generator().manual_seed(0))
    y = torch.arange(40) % 10
    first = model[0].weight.detach().clone()
    stats = model[1].running_mean.clone()
    lesson.fine_tune_head(model, x, y, batch_size=4, bn="frozen", steps=5)
    assert torch.equal(model[0].weight, first) and torch.equal(model[1].running_mean, stats)
    assert batchnorm_modes(model) == ["running statistics"]
    assert model[-1].weight.requires_grad and not model[0].weight.requires_grad
    lesson.fine_tune_head(model, x, y, batch_size=4, bn="train", steps=5)
    assert not torch.equal(model[1].running_mean, stats)  # requires_grad=False does not freeze BN
    with pytest.raises(ValueError, match="recalibrate"):
        lesson.fine_tune_head(model, x, y, batch_size=4, bn="recalibrated")


def test_train_is_seeded_and_leaves_torch_global_state_alone():
    x = torch.rand(30, 784, generator=torch.Generator().manual_seed(0))
    y = torch.arange(30) % 10
    state = torch.get_rng_state()
    runs = [lesson.train(lesson.bn_mlp(hidden=(8,), dropout=0.3, seed=1), x, y,
                         lesson.random_batches(30, 5, 6, seed=2), lr=0.1, seed=4) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert torch.equal(state, torch.get_rng_state())


def test_faded_is_an_affine_shift_plus_seeded_noise():
    x = torch.rand(5, 784, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(lesson.faded(x, 0, noise=0.0), 0.5 * x + 0.3)
    torch.testing.assert_close(lesson.faded(x, 7), lesson.faded(x, 7))


def test_autocast_probe_reports_bn_kept_in_float32():
    probe = lesson.autocast_probe(torch.bfloat16)
    assert probe["linear_out"] == "bfloat16" and probe["bn_out"] == "bfloat16"
    assert probe["bn_out_from_float32"] == "float32"  # on neither of autocast's CPU lists
    assert probe["running_var"] == "float32" and probe["weight"] == "float32"
    assert probe["var_error"] < 1e-3 < probe["naive_error"]


def test_padded_batch_pads_after_each_length():
    x, mask = lesson.padded_batch(lengths=(3, 1, 2), features=2, pad_value=-7.0)
    assert x.shape == (3, 3, 2) and mask.sum() == 6
    np.testing.assert_array_equal(mask[1], [True, False, False])
    assert np.all(x[~mask] == -7.0) and np.all(x[mask] != -7.0)
    with pytest.raises(ValueError, match="lengths"):
        lesson.padded_batch(lengths=(0, 2))


def test_with_progress_yields_every_item_in_order():
    assert list(lesson.with_progress(iter([3, 1, 2]), "items", progress=False)) == [3, 1, 2]
