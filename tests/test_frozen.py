"""helpers.frozen: FrozenBatchNorm1d/2d equal to BatchNorm in eval mode (torchvision's
FrozenBatchNorm2d semantics, float64, 1e-12), converting a model, freezing in place and what
model.train() undoes, and recalibration (the cumulative average of the batches' statistics)."""

import copy

import pytest
import torch
from torch import nn

from helpers.frozen import (
    FrozenBatchNorm1d,
    FrozenBatchNorm2d,
    batchnorm_layers,
    batchnorm_modes,
    convert_frozen_batchnorm,
    freeze_batchnorm,
    recalibrate_batchnorm,
)


def trained_bn(bn, seed=0):
    """A BN layer with non-trivial parameters and running statistics, in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    c = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=generator, dtype=bn.weight.dtype) + 0.5)
        bn.bias.copy_(torch.randn(c, generator=generator, dtype=bn.weight.dtype))
        bn.running_mean.copy_(torch.randn(c, generator=generator, dtype=bn.weight.dtype) * 3)
        bn.running_var.copy_(torch.rand(c, generator=generator, dtype=bn.weight.dtype) * 4 + 0.01)
    return bn.eval()


@pytest.mark.parametrize("kind, shape", [("2d", (4, 3, 5, 6)), ("1d", (7, 3)), ("1d", (2, 3, 9))])
@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.0])
def test_frozen_batchnorm_equals_batchnorm_in_eval_mode(kind, shape, eps):
    bn_class, frozen_class = ((nn.BatchNorm2d, FrozenBatchNorm2d) if kind == "2d"
                              else (nn.BatchNorm1d, FrozenBatchNorm1d))
    bn = trained_bn(bn_class(3, eps=eps, dtype=torch.float64))
    frozen = frozen_class(3, eps=eps).double()
    frozen.load_state_dict(bn.state_dict())  # BatchNorm's checkpoint, num_batches_tracked included
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 + 1
    with torch.no_grad():
        expected = bn(x)
        for mode in (True, False):  # a frozen layer is the same map in both modes
            torch.testing.assert_close(frozen.train(mode)(x), expected, rtol=0, atol=1e-12)
    # the formula of torchvision's FrozenBatchNorm2d, written out
    scale = bn.weight * (bn.running_var + eps).rsqrt()
    view = (1, -1) + (1,) * (x.dim() - 2)
    torch.testing.assert_close(frozen(x), x * scale.reshape(view) + (bn.bias - bn.running_mean * scale).reshape(view),
                               rtol=0, atol=1e-12)


def test_frozen_batchnorm_has_buffers_not_parameters_and_checks_its_input():
    frozen = FrozenBatchNorm2d(4)
    assert list(frozen.parameters()) == []
    assert sorted(name for name, _ in frozen.named_buffers()) == ["bias", "running_mean", "running_var", "weight"]
    assert "num_batches_tracked" not in frozen.state_dict()
    with pytest.raises(ValueError, match="4 dimensions"):
        frozen(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="4 channels"):
        FrozenBatchNorm1d(4)(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="positive integer"):
        FrozenBatchNorm1d(0)


def small_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(3 * 4 * 4, 5, bias=False), nn.BatchNorm1d(5),
                          nn.ReLU(), nn.Linear(5, 2)).double()
    for layer in batchnorm_layers(model):
        trained_bn(layer)
    return model


def test_convert_frozen_batchnorm_gives_the_eval_model_in_every_mode():
    model = small_model().eval()
    x = torch.randn(6, 1, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
        frozen = convert_frozen_batchnorm(copy.deepcopy(model)).train()
        assert batchnorm_layers(frozen) == []
        assert sum(isinstance(m, (FrozenBatchNorm1d, FrozenBatchNorm2d)) for m in frozen.modules()) == 2
        torch.testing.assert_close(frozen(x), expected, rtol=0, atol=1e-12)
    single = convert_frozen_batchnorm(trained_bn(nn.BatchNorm1d(5)))
    assert isinstance(single, FrozenBatchNorm1d)
    with pytest.raises(ValueError, match="no running statistics"):
        convert_frozen_batchnorm(nn.BatchNorm1d(3, track_running_stats=False))


def test_freeze_batchnorm_and_what_model_train_undoes():
    model = small_model().train()
    freeze_batchnorm(model)
    assert batchnorm_modes(model) == ["running statistics"] * 2
    assert all(not p.requires_grad for layer in batchnorm_layers(model) for p in layer.parameters())
    assert model[0].weight.requires_grad and model.training
    before = [layer.running_mean.clone() for layer in batchnorm_layers(model)]
    model(torch.randn(6, 1, 4, 4, dtype=torch.float64))
    assert all(torch.equal(layer.running_mean, b) for layer, b in zip(batchnorm_layers(model), before))
    model.train()  # what every training loop calls at the start of an epoch
    assert batchnorm_modes(model) == ["batch statistics"] * 2


def test_recalibrate_computes_the_cumulative_average_and_restores_modes_and_momentum():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.BatchNorm1d(3, momentum=0.3),
                          nn.Dropout(0.5)).double().eval()
    batches = [torch.randn(10, 4, dtype=torch.float64) * 2 + 1 for _ in range(5)]
    recalibrate_batchnorm(model, batches)
    bn = model[1]
    with torch.no_grad():
        z = [model[0](b) for b in batches]
    torch.testing.assert_close(bn.running_mean, torch.stack([v.mean(0) for v in z]).mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bn.running_var, torch.stack([v.var(0, unbiased=True) for v in z]).mean(0),
                               rtol=1e-12, atol=1e-12)
    assert bn.momentum == 0.3 and not model.training and not bn.training and not model[2].training
    with pytest.raises(ValueError, match="at least one batch"):
        recalibrate_batchnorm(model, [])
