"""Torch models used in the notebooks.

- ``Figure1MLP``: the network of the paper's Figure 1 (MNIST): 784 -> 3 x 100 sigmoid -> 10,
  optionally with batch normalization before (as in the paper) or after each sigmoid.
- ``SmallCNN``: two 3x3 conv blocks and a linear classifier, with a choice of normalization
  (none, batch, group, layer or instance).

Both take a ``seed``: the initial weights are drawn from their own random stream, so
building a model never changes torch's global random state.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from helpers.i18n import _

__all__ = ["Figure1MLP", "SmallCNN", "seeded"]

NORMS = (None, "batch", "group", "layer", "instance")


@contextmanager
def seeded(seed):
    """Run a block with torch's global generator seeded, and restore the generator afterwards.

    With seed None the block runs on torch's current global state.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Figure1MLP(nn.Module):
    """The paper's MNIST network: 784 inputs, ``depth`` hidden layers of ``hidden`` sigmoid units,
    10 outputs (logits, for a softmax cross-entropy loss).

    Args:
        batchnorm:   add ``nn.BatchNorm1d`` to every hidden layer
        bn_position: "before" the sigmoid (the paper: BN(Wu), the linear layer has no bias,
                     since BN's beta replaces it) or "after" it (BN(sigmoid(Wu + b)))
        hidden:      units per hidden layer
        depth:       number of hidden layers
        init_std:    weights ~ N(0, init_std^2), biases 0 ("small random Gaussian values")
        seed:        seed for the initial weights (None: torch's current global state)
        dropout:     probability of zeroing each hidden unit's output in training (after the
                     sigmoid, and after BN when bn_position is "after"); 0 (the default) adds
                     no dropout at all

    Shapes: input (N, 784) or (N, 28, 28); output (N, 10).
    """

    def __init__(self, batchnorm=False, bn_position="before", hidden=100, depth=3,
                 init_std=0.1, seed=None, dropout=0.0):
        super().__init__()
        if bn_position not in ("before", "after"):
            raise ValueError(_("bn_position must be 'before' or 'after', got {bn_position!r}").format(bn_position=bn_position))
        if init_std <= 0:
            raise ValueError(_("init_std must be positive, got {init_std!r}").format(init_std=init_std))
        if not 0.0 <= dropout < 1.0:
            raise ValueError(_("dropout must be a probability in [0, 1), got {dropout!r}").format(dropout=dropout))
        self.batchnorm = bool(batchnorm)
        self.bn_position = bn_position
        sizes = [28 * 28] + [hidden] * depth
        with seeded(seed):
            self.linears = nn.ModuleList(
                nn.Linear(fan_in, fan_out, bias=not (self.batchnorm and bn_position == "before"))
                for fan_in, fan_out in zip(sizes[:-1], sizes[1:])
            )
            self.norms = nn.ModuleList(
                nn.BatchNorm1d(fan_out) if self.batchnorm else nn.Identity() for fan_out in sizes[1:]
            )
            self.output = nn.Linear(hidden, 10)
            self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
            for linear in [*self.linears, self.output]:
                nn.init.normal_(linear.weight, mean=0.0, std=init_std)
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)

    def forward(self, x, return_preactivations=False):
        """Logits (N, 10); with ``return_preactivations`` also the list of the inputs to each
        hidden layer's sigmoid, one (N, hidden) tensor per layer."""
        h = x.flatten(1)
        preactivations = []
        for linear, norm in zip(self.linears, self.norms):
            z = linear(h)
            if self.bn_position == "before":
                z = norm(z)
            preactivations.append(z)
            h = torch.sigmoid(z)
            if self.bn_position == "after":
                h = norm(h)
            h = self.dropout(h)
        logits = self.output(h)
        return (logits, preactivations) if return_preactivations else logits


def _norm_layer(norm, channels, num_groups):
    if norm is None:
        return nn.Identity()
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        if channels % num_groups:
            raise ValueError(_("num_groups={num_groups} must divide the channels ({channels})").format(num_groups=num_groups, channels=channels))
        return nn.GroupNorm(num_groups, channels)
    if norm == "layer":  # one mean/variance per sample over (C, H, W)
        return nn.GroupNorm(1, channels)
    if norm == "instance":  # one mean/variance per sample and channel over (H, W)
        return nn.GroupNorm(channels, channels)
    raise ValueError(_("norm must be one of {NORMS}, got {norm!r}").format(NORMS=NORMS, norm=norm))


class SmallCNN(nn.Module):
    """A small CNN for 28x28 images: [conv3x3 -> norm -> ReLU -> maxpool2] x 2 -> linear.

    Args:
        norm:       None, "batch" (BatchNorm2d), "group" (GroupNorm), "layer" (GroupNorm with one
                    group) or "instance" (GroupNorm with one channel per group)
        channels:   output channels of the two conv layers
        num_groups: groups for norm="group"
        seed:       seed for the initial weights

    Shapes: input (N, 1, 28, 28) or (N, 28, 28); output (N, 10).
    """

    def __init__(self, norm="batch", channels=(16, 32), num_groups=4, seed=None):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(_("norm must be one of {NORMS}, got {norm!r}").format(NORMS=NORMS, norm=norm))
        self.norm = norm
        c1, c2 = channels
        with seeded(seed):
            # a conv followed by a normalization needs no bias: the normalization removes it
            self.conv1 = nn.Conv2d(1, c1, 3, padding=1, bias=norm is None)
            self.norm1 = _norm_layer(norm, c1, num_groups)
            self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=norm is None)
            self.norm2 = _norm_layer(norm, c2, num_groups)
            self.classifier = nn.Linear(c2 * 7 * 7, 10)

    def forward(self, x, return_features=False):
        """Logits (N, 10); with ``return_features`` also a dict of feature maps:
        conv1 / norm1 (N, c1, 28, 28) and conv2 / norm2 (N, c2, 14, 14), before and after
        the normalization."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        features = {}
        features["conv1"] = z = self.conv1(x)
        features["norm1"] = z = self.norm1(z)
        h = nn.functional.max_pool2d(torch.relu(z), 2)
        features["conv2"] = z = self.conv2(h)
        features["norm2"] = z = self.norm2(z)
        h = nn.functional.max_pool2d(torch.relu(z), 2)
        logits = self.classifier(h.flatten(1))
        return (logits, features) if return_features else logits
