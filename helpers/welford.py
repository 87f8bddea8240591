"""Mean and variance three ways, in any floating precision: the formula that fails, and two that do not.

Batch normalization needs the mean and the (biased) variance of every feature over a batch.
There are three ways to compute them, and in low precision (float16, and float32 for large
offsets) only two of them are safe:

- ``one_pass_moments``: E[x^2] - E[x]^2, one pass over the data. It squares the raw values, so
  in float16 (largest finite number 65504) x^2 overflows once |x| > 255.9, and the sum of the
  squares much earlier; and when the mean is large compared with the spread, the two terms are
  nearly equal and their difference *cancels*: the result can be off by 100 % or negative.
  It is here to be shown failing, never to be used.
- ``two_pass_moments``: the mean first, then the mean of the squared deviations from it, what
  ``helpers.bn`` does (the data are shifted by one sample first, so that even the first pass
  sums small numbers and cannot overflow).
- ``welford_moments``: one pass, Welford's update (Welford 1962; Knuth, TAOCP vol. 2, §4.2.2):
  after each new value x_k, with delta = x_k - mean_{k-1},

      mean_k = mean_{k-1} + delta / k
      M2_k   = M2_{k-1}   + delta * (x_k - mean_k)

  and the biased variance is M2_n / n. It never squares a raw value, only deviations from the
  running mean, and it can run on a stream (one value, or one row of values, at a time).

Every function computes *in the dtype it is given* (``dtype=None``: the dtype of x; integers
become float64): every sum, square and division is rounded to that precision, which is how the
failures of low precision show. numpy only.
"""

from __future__ import annotations

import numpy as np

from helpers.i18n import _

__all__ = ["one_pass_moments", "two_pass_moments", "welford_moments", "welford_update"]


def _as_rows(x, dtype) -> np.ndarray:
    """x as an (N, ...) floating array in ``dtype`` (default: x's floating dtype, or float64)."""
    x = np.asarray(x)
    if dtype is None:
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(_("dtype must be a floating dtype (float16, float32, float64), got {dtype}").format(dtype=dtype))
    if x.ndim == 0 or len(x) < 1:
        raise ValueError(_("x must be (N, ...) with N >= 1 values along axis 0, got shape {x_shape}").format(x_shape=x.shape))
    return x.astype(dtype, copy=False)


def welford_update(count: int, mean, m2, value):
    """One step of Welford's update: fold one more observation into (count, mean, M2).

    Args:
        count: k - 1, how many values the running state holds (0 to start)
        mean:  the mean of those values (any shape, e.g. (D,) for D features; 0 to start)
        m2:    M2, their sum of squared deviations from ``mean`` (same shape; 0 to start)
        value: the new observation, shaped like ``mean`` (one row of a batch)

    Returns:
        (count + 1, new_mean, new_m2); new arrays, in the dtype of ``value`` and ``mean``.
        The biased variance of all values so far is new_m2 / (count + 1).
    """
    if int(count) != count or count < 0:
        raise ValueError(_("count must be a non-negative integer, got {count!r}").format(count=count))
    count = int(count) + 1
    value = np.asarray(value)
    mean = np.asarray(mean, dtype=value.dtype if np.issubdtype(value.dtype, np.floating) else None)
    delta = value - mean  # deviation from the old mean
    mean = mean + delta / mean.dtype.type(count)
    m2 = m2 + delta * (value - mean)  # old deviation times new deviation: never negative
    return count, mean, m2


def welford_moments(x, dtype=None):
    """Mean and biased variance over axis 0 by Welford's update, one row at a time.

    Args:
        x:     (N, ...) values; N >= 1
        dtype: the precision every operation is rounded to (default: x's floating dtype)

    Returns:
        (mean, var), each shaped x.shape[1:], in ``dtype``; var = M2 / N (biased, what BN
        normalizes with)
    """
    x = _as_rows(x, dtype)
    count, mean, m2 = 0, np.zeros(x.shape[1:], x.dtype), np.zeros(x.shape[1:], x.dtype)
    for row in x:
        count, mean, m2 = welford_update(count, mean, m2, row)
    return mean, m2 / x.dtype.type(count)


def two_pass_moments(x, dtype=None):
    """Mean and biased variance over axis 0 in two passes: the mean, then the mean of the squared
    deviations from it (``helpers.bn``'s way, shifted by the first row so that the first pass
    sums small differences).

    Args:
        x:     (N, ...) values; N >= 1
        dtype: the precision every operation is rounded to (default: x's floating dtype)

    Returns:
        (mean, var), each shaped x.shape[1:], in ``dtype``
    """
    x = _as_rows(x, dtype)
    n = x.dtype.type(len(x))
    shifted = x - x[0]  # (N, ...) small numbers when the spread is small
    shifted_mean = np.sum(shifted, axis=0, dtype=x.dtype) / n
    centred = shifted - shifted_mean
    var = np.sum(centred * centred, axis=0, dtype=x.dtype) / n
    return x[0] + shifted_mean, var


def one_pass_moments(x, dtype=None):
    """Mean and biased variance over axis 0 as E[x] and E[x^2] - E[x]^2: the formula that fails.

    Overflows in float16 once the squares or their sum pass 65504, cancels catastrophically
    when |mean| is large compared with the spread (in float32 too, for larger means), and can
    return a *negative* variance. Shown in the course to be seen failing; use
    ``two_pass_moments`` or ``welford_moments``.

    Args:
        x:     (N, ...) values; N >= 1
        dtype: the precision every operation is rounded to (default: x's floating dtype)

    Returns:
        (mean, var), each shaped x.shape[1:], in ``dtype`` (var may be inf, nan or negative)
    """
    x = _as_rows(x, dtype)
    n = x.dtype.type(len(x))
    with np.errstate(over="ignore", invalid="ignore"):
        mean = np.sum(x, axis=0, dtype=x.dtype) / n
        mean_of_squares = np.sum(x * x, axis=0, dtype=x.dtype) / n
        return mean, mean_of_squares - mean * mean
