"""Notebook 05 (convolutional BN): the computations behind its demonstrations.

The normalizations themselves (batch, layer, instance and group statistics of an (N, C, H, W)
feature map) are library code in ``helpers.norms``; this module holds what only notebook 05 uses.

numpy only.
"""

from __future__ import annotations

from helpers.i18n import _

__all__ = ["parameter_counts"]


def parameter_counts(channels: int, height: int, width: int) -> dict:
    """Learnable parameters (gamma and beta) of a BN layer on a (C, H, W) feature map.

    Returns {"per_channel": 2 * C, "per_activation": 2 * C * H * W}: the convolutional BN
    of the paper's §3.2, and the fully connected rule applied to every activation.
    """
    for name, value in (("channels", channels), ("height", height), ("width", width)):
        if int(value) != value or value < 1:
            raise ValueError(_("{name} must be a positive integer, got {value!r}").format(name=name, value=value))
    return {"per_channel": 2 * channels, "per_activation": 2 * channels * height * width}
