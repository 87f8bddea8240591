"""Which values share one mean and variance: batch, layer, instance and group normalization.

All four normalize a feature map x of shape (N, C, H, W) the same way,

    x_hat = (x - mean) / sqrt(var + eps),

and differ only in *which values* are averaged together to get one mean and one (biased)
variance (Wu & He 2018, Figure 2):

    batch     over (N, H, W): one statistic per channel             (Ioffe & Szegedy 2015, §3.2)
    layer     over (C, H, W): one statistic per sample              (Ba et al. 2016)
    instance  over (H, W):    one statistic per sample and channel  (Ulyanov et al. 2016)
    group     over (C/G, H, W) after splitting the C channels into G groups of consecutive
              channels: one statistic per sample and group          (Wu & He 2018)

Every one of them averages over all of H and W, so which values share statistics is decided
by the (sample, channel) pair alone: ``statistics_labels`` returns an (N, C) array of group
ids, which is what the course's cube figure draws.

For sequences (N, T, D), notebook 08: ``layer_norm`` normalizes each token over its last axes
with a learnable scale and shift, ``torch.nn.functional.layer_norm``'s convention, and
``masked_batch_norm`` computes batch statistics over the real tokens of a padded batch only.

numpy only (torch is the judge in the tests). Statistics are accumulated in float64 in two
passes (mean first), like ``helpers.bn``; the output keeps the floating dtype of x.
"""

from __future__ import annotations

import numpy as np

from helpers.i18n import N_, _

__all__ = [
    "NORMALIZATIONS",
    "group_normalize",
    "layer_norm",
    "masked_batch_norm",
    "normalization_axes",
    "normalize",
    "normalize_feature_map",
    "shares_statistics_with",
    "statistics_labels",
    "values_per_statistic",
]

#: The four normalizations this module knows, in the order of Wu & He's Figure 2 (marked for the
#: catalog: a panel's dropdown shows them translated, the values stay these English keys).
NORMALIZATIONS = (N_("batch"), N_("layer"), N_("instance"), N_("group"))

#: Axes of an (N, C, H, W) array averaged over by each normalization (group: see group_normalize).
_AXES = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}


def _check_kind(kind) -> str:
    if kind not in NORMALIZATIONS:
        raise ValueError(_("kind must be one of {NORMALIZATIONS}, got {kind!r}").format(NORMALIZATIONS=NORMALIZATIONS, kind=kind))
    return kind


def _check_eps(eps) -> float:
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(_("eps must be a positive number (the default is 1e-5), got {eps!r}").format(eps=eps))
    return float(eps)


def _check_groups(num_groups, channels: int) -> int:
    if num_groups is None or int(num_groups) != num_groups or num_groups < 1:
        raise ValueError(_("num_groups must be a positive integer, got {num_groups!r}").format(num_groups=num_groups))
    if channels % num_groups:
        raise ValueError(
            _("num_groups={num_groups} must divide the number of channels C={channels} "
              "(GroupNorm splits the channels into equal groups)").format(num_groups=num_groups, channels=channels)
        )
    return int(num_groups)


def _as_feature_map(x) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim != 4:
        raise ValueError(_("x must have 4 dimensions (N, C, H, W), got shape {x_shape}").format(x_shape=x.shape))
    return x


def normalization_axes(kind: str) -> tuple:
    """The axes of an (N, C, H, W) array that ``kind`` averages over.

    "batch" -> (0, 2, 3), "layer" -> (1, 2, 3), "instance" -> (2, 3). Group normalization
    has no such tuple (it averages over part of the C axis): see ``group_normalize``.
    """
    kind = _check_kind(kind)
    if kind == "group":
        raise ValueError(
            _("group normalization averages over a group of channels, not over whole "
              "axes of (N, C, H, W): reshape to (N, G, C // G, H, W) and average over "
              "axes (2, 3, 4), as group_normalize does")
        )
    return _AXES[kind]


def normalize(x, axes, eps=1e-5) -> np.ndarray:
    """Subtract the mean and divide by sqrt(biased variance + eps), statistics over ``axes``.

    One function for every normalization that averages over whole axes:
    axes (0, 2, 3) is batch norm for (N, C, H, W), (1, 2, 3) layer norm, (2, 3) instance
    norm, (0,) batch norm for (N, D). No learnable scale and shift (gamma = 1, beta = 0).

    Args:
        x:    array of any shape with at least one dimension
        axes: int or tuple of ints, the axes averaged over (negative values allowed)
        eps:  small positive number added to the variance

    Returns:
        array of x's shape and floating dtype
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim == 0:
        raise ValueError(_("x must have at least one dimension"))
    eps = _check_eps(eps)
    axes = _normalized_axes(axes, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes]))
    if count < 2:
        raise ValueError(
            _("each statistic would average a single value (x shape {x_shape}, axes "
              "{axes}); a variance needs at least 2 values").format(x_shape=x.shape, axes=axes)
        )
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    centred = x - mean  # float64
    var = np.mean(centred * centred, axis=axes, keepdims=True)
    return (centred / np.sqrt(var + eps)).astype(x.dtype, copy=False)


def _normalized_axes(axes, ndim: int) -> tuple:
    """``axes`` (an int or a sequence of ints, negative allowed) as a sorted tuple of
    distinct non-negative axes of an ndim-dimensional array."""
    axes = (axes,) if np.isscalar(axes) else tuple(axes)
    if not axes:
        raise ValueError(_("axes must name at least one axis to average over"))
    result = set()
    for axis in axes:
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(_("axes must be integers, got {axes!r}").format(axes=axes))
        if not -ndim <= axis < ndim:
            raise ValueError(_("axis {axis} is out of range for an array with {ndim} dimensions").format(axis=axis, ndim=ndim))
        result.add(int(axis) % ndim)
    return tuple(sorted(result))


def group_normalize(x, num_groups: int, eps=1e-5) -> np.ndarray:
    """Group normalization without scale and shift: torch.nn.GroupNorm(num_groups, C, affine=False).

    The C channels are split into ``num_groups`` groups of C // G *consecutive* channels
    (channels 0..C/G-1 form group 0, and so on); each (sample, group) gets one mean and
    one variance over its C/G channels and all H x W positions.

    Args:
        x:          (N, C, H, W)
        num_groups: G, a divisor of C. G = 1 is layer norm, G = C is instance norm.
        eps:        small positive number added to the variance

    Returns:
        (N, C, H, W), x's floating dtype
    """
    x = _as_feature_map(x)
    n, c, h, w = x.shape
    g = _check_groups(num_groups, c)
    grouped = x.reshape(n, g, c // g, h, w)  # consecutive channels share a group
    return normalize(grouped, axes=(2, 3, 4), eps=eps).reshape(n, c, h, w)


def normalize_feature_map(x, kind: str, num_groups: int | None = None, eps=1e-5) -> np.ndarray:
    """Normalize an (N, C, H, W) array with batch, layer, instance or group statistics.

    Training-mode statistics (from x itself), no gamma / beta.

    Args:
        x:          (N, C, H, W)
        kind:       "batch", "layer", "instance" or "group"
        num_groups: G for kind="group" (a divisor of C); ignored otherwise

    Returns:
        (N, C, H, W)
    """
    kind = _check_kind(kind)
    if kind == "group":
        return group_normalize(x, num_groups, eps)
    return normalize(_as_feature_map(x), _AXES[kind], eps)


def statistics_labels(kind: str, batch_size: int, channels: int,
                      num_groups: int | None = None) -> np.ndarray:
    """Which (sample, channel) pairs share one mean and variance.

    Returns an (N, C) int array: equal numbers = the same statistics. (All four
    normalizations average over every position H x W, so the label of a value depends on
    its sample and channel alone.)

        batch:    label = channel                       (C statistics)
        layer:    label = sample                        (N statistics)
        instance: label = sample * C + channel          (N * C statistics)
        group:    label = sample * G + channel // (C/G) (N * G statistics)
    """
    kind = _check_kind(kind)
    for name, value in (("batch_size", batch_size), ("channels", channels)):
        if int(value) != value or value < 1:
            raise ValueError(_("{name} must be a positive integer, got {value!r}").format(name=name, value=value))
    sample = np.arange(batch_size)[:, None]  # (N, 1)
    channel = np.arange(channels)[None, :]  # (1, C)
    if kind == "batch":
        labels = np.broadcast_to(channel, (batch_size, channels))
    elif kind == "layer":
        labels = np.broadcast_to(sample, (batch_size, channels))
    elif kind == "instance":
        labels = sample * channels + channel
    else:
        g = _check_groups(num_groups, channels)
        labels = sample * g + channel // (channels // g)
    return np.array(labels, dtype=int)


def shares_statistics_with(kind: str, batch_size: int, channels: int, sample: int,
                           channel: int, num_groups: int | None = None) -> np.ndarray:
    """(N, C) bool mask: the (sample, channel) pairs whose values are averaged together
    with those of (``sample``, ``channel``)."""
    labels = statistics_labels(kind, batch_size, channels, num_groups)
    if not (0 <= sample < batch_size and 0 <= channel < channels):
        raise ValueError(
            _("(sample, channel) must lie in a batch of {batch_size} samples with "
              "{channels} channels, got ({sample}, {channel})").format(batch_size=batch_size, channels=channels, sample=sample, channel=channel)
        )
    return labels == labels[sample, channel]


def values_per_statistic(kind: str, shape, num_groups: int | None = None) -> int:
    """How many values each mean and variance averages, for x of shape (N, C, H, W).

    batch: N*H*W (the paper's effective mini-batch m' = m*p*q), layer: C*H*W,
    instance: H*W, group: (C/G)*H*W.
    """
    kind = _check_kind(kind)
    if len(shape) != 4:
        raise ValueError(_("shape must be (N, C, H, W), got {shape!r}").format(shape=shape))
    n, c, h, w = (int(s) for s in shape)
    if kind == "batch":
        return n * h * w
    if kind == "layer":
        return c * h * w
    if kind == "instance":
        return h * w
    return (c // _check_groups(num_groups, c)) * h * w



def layer_norm(x, normalized_ndim: int = 1, gamma=None, beta=None, eps=1e-5) -> np.ndarray:
    """Layer normalization as ``torch.nn.functional.layer_norm(x, x.shape[-k:], gamma, beta, eps)``.

    Each slice over the last ``normalized_ndim`` = k axes (one token's D features for a sequence
    (N, T, D); one example's (C, H, W) for a feature map with k = 3) gets its own mean and
    biased variance, so an example's output never depends on the other examples in the batch,
    nor on padding.

    Args:
        x:               array with at least ``normalized_ndim`` dimensions
        normalized_ndim: k >= 1, how many trailing axes share one mean and variance
        gamma, beta:     None (1 and 0) or arrays of shape x.shape[-k:], applied elementwise
        eps:             small positive number added to the variance

    Returns:
        array of x's shape and floating dtype
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if int(normalized_ndim) != normalized_ndim or not 1 <= normalized_ndim <= x.ndim:
        raise ValueError(_("normalized_ndim must be an integer from 1 to x.ndim = {x_ndim}, got "
                           "{normalized_ndim!r}").format(x_ndim=x.ndim, normalized_ndim=normalized_ndim))
    k = int(normalized_ndim)
    axes = tuple(range(x.ndim - k, x.ndim))
    out = normalize(x, axes, eps)
    trailing = x.shape[x.ndim - k:]
    for name, value in (("gamma", gamma), ("beta", beta)):
        if value is not None and np.shape(value) != trailing:
            raise ValueError(_("{name} must have shape {trailing} (the normalized axes), got {value}").format(name=name, trailing=trailing, value=np.shape(value)))
    if gamma is not None:
        out = out * np.asarray(gamma)
    if beta is not None:
        out = out + np.asarray(beta)
    return out.astype(x.dtype, copy=False)


def masked_batch_norm(x, mask, eps=1e-5):
    """Batch normalization of a padded batch of sequences, statistics over the real tokens only.

    For x (N, T, D), batch normalization treats every (example, position) as a sample and
    computes one mean and variance per feature over all N * T of them; with padding, the pad
    tokens enter those statistics. Here only the positions where ``mask`` is True count:

        mean = sum(mask * x) / sum(mask),   var = sum(mask * (x - mean)^2) / sum(mask)

    (two passes, biased variance; Keras's ``BatchNormalization(mask=...)`` computes the same).

    Args:
        x:    (N, T, D) a padded batch
        mask: (N, T) bool, True at real tokens; at least 2 of them
        eps:  small positive number added to the variance

    Returns:
        (out, mean, var): out (N, T, D) normalized (pad positions are normalized too, with the
        same statistics: mask them out downstream), mean and var (D,)
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    mask = np.asarray(mask)
    if x.ndim != 3:
        raise ValueError(_("x must be a padded batch (N, T, D), got shape {x_shape}").format(x_shape=x.shape))
    if mask.shape != x.shape[:2] or mask.dtype != bool:
        raise ValueError(_("mask must be a bool array of shape {value} (N, T), got {mask_dtype} of "
                           "shape {mask_shape}").format(value=x.shape[:2], mask_dtype=mask.dtype, mask_shape=mask.shape))
    eps = _check_eps(eps)
    count = int(mask.sum())
    if count < 2:
        raise ValueError(_("the mask selects {count} token(s); a variance needs at least 2").format(count=count))
    real = x[mask]  # (count, D), the real tokens
    mean = real.mean(axis=0, dtype=np.float64)
    centred = real - mean
    var = np.mean(centred * centred, axis=0)
    out = (x - mean) / np.sqrt(var + eps)
    return out.astype(x.dtype, copy=False), mean, var
