"""Inference folding: a small CNN's eval-mode conv -> BN against the same convs with BN folded in."""

from __future__ import annotations

import copy

import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval

from benchmarks.common import Result, at_least, interleaved_medians
from helpers.models import SmallCNN


def folded_copy(model: SmallCNN) -> SmallCNN:
    """The same network with each BatchNorm2d folded into the conv before it (eval mode)."""
    folded = copy.deepcopy(model).eval()
    folded.conv1 = fuse_conv_bn_eval(folded.conv1, folded.norm1)
    folded.conv2 = fuse_conv_bn_eval(folded.conv2, folded.norm2)
    folded.norm1 = torch.nn.Identity()
    folded.norm2 = torch.nn.Identity()
    return folded


def run(tiny: bool = False) -> list[Result]:
    model = SmallCNN(norm="batch", channels=(16, 32), seed=0)
    with torch.no_grad():  # give the BN layers non-trivial statistics
        model.train()
        for _ in range(5):
            model(torch.rand(64, 1, 28, 28))
    model.eval()
    folded = folded_copy(model)
    x = torch.rand(8 if tiny else 256, 1, 28, 28)
    with torch.no_grad():
        max_difference = (model(x) - folded(x)).abs().max().item()
        t = interleaved_medians({"bn": lambda: model(x), "folded": lambda: folded(x)},
                                repeats=3 if tiny else 30)
    return [
        Result("fold: eval conv->BN", t["bn"] * 1e3, "ms"),
        Result("fold: folded conv", t["folded"] * 1e3, "ms"),
        at_least("fold: speed-up of folding (conv->BN / folded)", t["bn"] / t["folded"], "x", 1.0),
        Result("fold: max |output difference|", max_difference, "abs"),
    ]
