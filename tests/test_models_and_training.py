"""The torch models and the training loop: shapes, seeding, recording, divergence."""

import numpy as np
import pytest
import torch

from helpers.models import Figure1MLP, SmallCNN
from helpers.training import show_progress, train_classifier


def toy_problem(n=600, seed=0):
    """A linearly separable 10-class problem on 784 inputs: quick to learn."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(10, 784, generator=generator)
    y = torch.randint(0, 10, (n,), generator=generator)
    x = centers[y] + 0.5 * torch.randn(n, 784, generator=generator)
    return x, y


@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("bn_position", ["before", "after"])
def test_figure1_mlp_structure(batchnorm, bn_position):
    model = Figure1MLP(batchnorm=batchnorm, bn_position=bn_position, seed=0)
    logits, preactivations = model(torch.rand(5, 28, 28), return_preactivations=True)
    assert logits.shape == (5, 10)
    assert [tuple(z.shape) for z in preactivations] == [(5, 100)] * 3
    bn_layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bn_layers) == (3 if batchnorm else 0)
    # the paper: with BN before the sigmoid, the linear layer's bias is redundant (beta replaces it)
    has_bias = [linear.bias is not None for linear in model.linears]
    assert has_bias == [not (batchnorm and bn_position == "before")] * 3


def test_figure1_mlp_init_is_small_gaussian_and_seeded():
    a, b = Figure1MLP(seed=3, init_std=0.05), Figure1MLP(seed=3, init_std=0.05)
    assert torch.equal(a.linears[0].weight, b.linears[0].weight)
    assert a.linears[0].weight.std().item() == pytest.approx(0.05, rel=0.02)
    assert not torch.equal(a.linears[0].weight, Figure1MLP(seed=4).linears[0].weight)


def test_building_a_model_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Figure1MLP(seed=0)
    SmallCNN(seed=0)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("norm", [None, "batch", "group", "layer", "instance"])
def test_small_cnn_shapes(norm):
    model = SmallCNN(norm=norm, channels=(8, 16), seed=0)
    logits, features = model(torch.rand(4, 1, 28, 28), return_features=True)
    assert logits.shape == (4, 10)
    assert features["norm1"].shape == (4, 8, 28, 28) and features["norm2"].shape == (4, 16, 14, 14)
    assert model(torch.rand(2, 28, 28)).shape == (2, 10)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="bn_position must be 'before' or 'after'"):
        Figure1MLP(bn_position="middle")
    with pytest.raises(ValueError, match="norm must be one of"):
        SmallCNN(norm="weight")
    with pytest.raises(ValueError, match="must divide the channels"):
        SmallCNN(norm="group", channels=(6, 16), num_groups=4)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_training_learns_and_records(batchnorm):
    x, y = toy_problem()
    model = Figure1MLP(batchnorm=batchnorm, seed=0)
    history = train_classifier(model, x[:500], y[:500], x[500:], y[500:], steps=120, lr=0.5,
                               record_every=40, tracked_units=[(-1, 0), (0, 5)], progress=False)
    assert history.steps.tolist() == [0, 40, 80, 120]
    assert history.percentiles.shape == (4, 2, 3)
    assert np.all(np.diff(history.percentiles, axis=2) >= 0)  # 15th <= 50th <= 85th
    assert history.test_accuracy[-1] > 0.9 > history.test_accuracy[0]
    assert np.isnan(history.train_loss[0]) and np.all(history.train_loss[1:] > 0)
    assert history.accuracy_at(120) == history.test_accuracy[-1]
    assert not history.diverged and model.training


def test_training_is_deterministic():
    x, y = toy_problem()

    def run():
        model = Figure1MLP(batchnorm=True, seed=1)
        return train_classifier(model, x, y, x, y, steps=30, record_every=10, progress=False)

    first, second = run(), run()
    np.testing.assert_array_equal(first.test_accuracy, second.test_accuracy)
    np.testing.assert_array_equal(first.train_loss[1:], second.train_loss[1:])


def test_divergence_stops_the_run():
    x, y = toy_problem()
    model = Figure1MLP(batchnorm=False, init_std=1.0, seed=0)
    history = train_classifier(model, x, y, x, y, steps=50, lr=1e4, record_every=10, progress=False)
    assert history.diverged  # a sigmoid net saturates: the loss explodes without becoming NaN
    assert history.steps[-1] < 50
    assert np.isnan(history.accuracy_at(50))


def test_progress_is_quiet_unless_someone_watches(monkeypatch):
    assert show_progress(True) and not show_progress(False)
    monkeypatch.setenv("BATCHNORM_COURSE_PROGRESS", "0")
    assert not show_progress(None)


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.5, 1e-3)])
def test_sgd_makes_the_same_steps_as_torch_optim_sgd(momentum, weight_decay):
    from helpers.training import SGD

    x, y = toy_problem(n=120)
    ours_model, torch_model = Figure1MLP(batchnorm=True, seed=2), Figure1MLP(batchnorm=True, seed=2)
    ours = SGD(ours_model.parameters(), lr=0.3, momentum=momentum, weight_decay=weight_decay)
    theirs = torch.optim.SGD(torch_model.parameters(), lr=0.3, momentum=momentum,
                             weight_decay=weight_decay)
    for step in range(5):
        batch = slice(20 * step, 20 * step + 20)
        for model, optimizer in ((ours_model, ours), (torch_model, theirs)):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    for a, b in zip(ours_model.parameters(), torch_model.parameters()):
        assert torch.equal(a, b)  # bit for bit
