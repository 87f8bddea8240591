"""Mean and variance of data held in parts: the merge of Chan, Golub & LeVeque (1979).

A part of the data is summarized by three numbers per feature, its ``Moments``:
``count`` (how many values), ``mean`` and ``m2``, the sum of squared deviations from the
part's own mean (``m2 / count`` is the biased variance, ``m2 / (count - 1)`` the unbiased
one). Two parts merge exactly, without seeing the data again::

    n     = n_a + n_b
    delta = mean_b - mean_a
    mean  = mean_a + delta * n_b / n
    m2    = m2_a + m2_b + delta**2 * n_a * n_b / n

This is how statistics computed on several processes (or GPU thread blocks, or chunks of
a file) are combined: in floating point it is as accurate as the two-pass variance of the
concatenated data, unlike the one-pass shortcut sum(x**2)/n - (sum(x)/n)**2, which
cancels catastrophically when the mean is large compared with the spread.

Only arithmetic is used, so ``merge`` and ``merge_all`` work on numpy arrays and on
anything with the same operators (torch tensors). numpy alone is imported.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from helpers.i18n import _

__all__ = ["Moments", "merge", "merge_all", "moments", "variance"]


class Moments(NamedTuple):
    """count: number of values per feature (a number, the same for every feature);
    mean and m2: one value per feature (arrays of one shape, or numbers)."""

    count: float
    mean: object
    m2: object


def moments(x, axis=0) -> Moments:
    """The Moments of ``x`` over ``axis`` (an int or a tuple of ints), in two passes.

    x (N, D) with axis=0 gives per-feature moments of shape (D,); x (N, C, H, W) with
    axis=(0, 2, 3) gives per-channel moments of shape (C,). An empty part (N = 0) has
    count 0 and mean and m2 of zeros.
    """
    x = np.asarray(x)
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    if x.ndim == 0:
        raise ValueError(_("moments needs an array with at least one axis, got a scalar"))
    if any(not -x.ndim <= a < x.ndim for a in axes) or len(set(a % x.ndim for a in axes)) != len(axes):
        raise ValueError(_("axis {axis!r} does not fit an array of shape {x_shape}").format(axis=axis, x_shape=x.shape))
    axes = tuple(a % x.ndim for a in axes)
    count = int(np.prod([x.shape[a] for a in axes]))
    kept = tuple(size for a, size in enumerate(x.shape) if a not in axes)
    if count == 0:
        return Moments(0, np.zeros(kept), np.zeros(kept))
    mean = x.mean(axis=axes, keepdims=True)
    m2 = ((x - mean) ** 2).sum(axis=axes)
    return Moments(count, mean.reshape(kept), m2)


def merge(a: Moments, b: Moments) -> Moments:
    """The Moments of two parts together (Chan, Golub & LeVeque 1979, eq. 2.1).

    An empty part (count 0) leaves the other unchanged.
    """
    a, b = Moments(*a), Moments(*b)
    if a.count < 0 or b.count < 0:
        raise ValueError(_("counts must be >= 0, got {value!r} and {value2!r}").format(value=a.count, value2=b.count))
    if a.count == 0:
        return b
    if b.count == 0:
        return a
    if np.shape(a.mean) != np.shape(b.mean):
        raise ValueError(_("the parts have means of different shapes: {value} and {value2}").format(value=np.shape(a.mean), value2=np.shape(b.mean)))
    count = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / count)
    m2 = a.m2 + b.m2 + delta * delta * (a.count * b.count / count)
    return Moments(count, mean, m2)


def merge_all(parts) -> Moments:
    """The Moments of all ``parts`` together, merged left to right."""
    parts = [Moments(*part) for part in parts]
    if not parts:
        raise ValueError(_("merge_all needs at least one part"))
    total = parts[0]
    for part in parts[1:]:
        total = merge(total, part)
    return total


def variance(m: Moments, ddof: int = 0):
    """The variance m2 / (count - ddof): ddof=0 the biased one (BN normalizes with it),
    ddof=1 the unbiased one (BN's running variance stores it)."""
    m = Moments(*m)
    if m.count - ddof <= 0:
        raise ValueError(_("a variance with ddof={ddof} needs more than {ddof} values, got {value}").format(ddof=ddof, value=m.count))
    return m.m2 / (m.count - ddof)
