"""Batch Normalization in numpy: the course's reference implementation.

Everything here uses numpy alone, so that torch can act as an independent judge
(the tests compare every function with torch in float64 to 1e-9 or better).

Conventions (the same as ``torch.nn.BatchNorm1d`` / ``BatchNorm2d``):

- ``x`` is (N, D) for fully connected layers and (N, C, H, W) for convolutions;
  one mean and one variance per feature D (or per channel C, over N, H and W).
- Normalization uses the *biased* batch variance (divide by the number of values, m).
- The running variance is stored *unbiased* (multiplied by m / (m - 1)).
- ``momentum`` weights the new batch: ``new = (1 - momentum) * old + momentum * batch``;
  ``momentum=None`` gives a cumulative average over all batches seen.
- ``eps = 1e-5``.

Numerics: the variance is computed in two passes (mean first, then the mean of the
squared deviations), never as E[x^2] - E[x]^2, which cancels catastrophically when the
mean is large compared with the spread; the data are shifted by one sample first, which
keeps float32 accurate too. Everything is computed in the floating dtype of ``x``, except
float16, which is computed in float32 and returned as float16 (as torch does). A training
batch with NaN or inf is refused with a ValueError (it would poison every statistic); finite
values so large that their squares overflow are scaled by a power of two first (BN does not
depend on the scale), so they are normalized correctly instead of collapsing to beta.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.i18n import _

__all__ = [
    "BatchNorm",
    "BatchNormCache",
    "batchnorm_backward",
    "batchnorm_backward_compact",
    "batchnorm_forward",
    "batchnorm_inference",
    "fold_batchnorm",
    "spatial_batchnorm_backward",
    "spatial_batchnorm_forward",
    "update_running_stats",
]


# ----------------------------------------------------------------------------------------
# Input checks. Each raises ValueError with a message that says what was expected.
# ----------------------------------------------------------------------------------------


def _as_float_array(x, name: str) -> np.ndarray:
    """Return ``x`` as a floating numpy array (integers become float64)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return x


def _working_dtype(dtype):
    """The dtype the arithmetic runs in: float16 in float32 (as torch does), others as they are."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def _as_dtype(dtype, *arrays):
    """The arrays converted to ``dtype`` (no copy where they already are)."""
    return tuple(array.astype(dtype, copy=False) for array in arrays)


def _is_real_number(value) -> bool:
    """True for an int or float scalar (numpy's too); False for bool, str, None, arrays..."""
    return np.ndim(value) == 0 and np.asarray(value).dtype.kind in "iuf"


def _check_number(value, name: str, expected: str) -> float:
    """``value`` as a float; TypeError naming the argument unless it is a real number."""
    if not _is_real_number(value):
        raise TypeError(f"{name} must be {expected}, got {value!r} (of type {type(value).__name__})")
    return float(value)


def _check_eps(eps) -> float:
    expected = "a positive number (the default is 1e-5)"
    eps = _check_number(eps, "eps", expected)
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(_("eps must be {expected}, got {eps!r}").format(expected=expected, eps=eps))
    return eps


def _check_momentum(momentum, expected: str) -> float:
    momentum = _check_number(momentum, "momentum", expected)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(_("momentum must be {expected}, got {momentum!r}").format(expected=expected, momentum=momentum))
    return momentum


def _check_num_features(num_features) -> int:
    expected = "a positive integer (the number of features or channels)"
    if not _is_real_number(num_features):
        raise TypeError(f"num_features must be {expected}, got {num_features!r}")
    if not np.isfinite(num_features) or int(num_features) != num_features or num_features < 1:
        raise ValueError(_("num_features must be {expected}, got {num_features!r}").format(expected=expected, num_features=num_features))
    return int(num_features)


def _check_ndim(x: np.ndarray, ndim: int, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(_("x must have {ndim} dimensions {layout}, got shape {shape}").format(ndim=ndim, layout=layout, shape=x.shape))


def _features(indices) -> str:
    """'feature 0' or 'features 2, 3' (the first ten, for long lists)."""
    indices = [int(i) for i in indices]
    shown = ", ".join(map(str, indices[:10])) + (f", ... ({len(indices)} in all)" if len(indices) > 10 else "")
    return f"feature{'s' if len(indices) > 1 else ''} {shown}"


def _non_finite_summary(array: np.ndarray) -> str:
    """How many NaN and inf values an (N, D) or (D,) array holds, and in which features
    (columns): e.g. '2 NaN and 1 inf (NaN in feature 0; inf in features 2, 3)'."""
    columns = array.reshape(-1, array.shape[-1])
    counts, places = [], []
    for label, mask in (("NaN", np.isnan(columns)), ("inf", np.isinf(columns))):
        counts.append(f"{int(mask.sum())} {label}")
        features = np.flatnonzero(mask.any(axis=0))
        if features.size:
            places.append(f"{label} in {_features(features)}")
    return f"{' and '.join(counts)} ({'; '.join(places)})"


def _check_finite_batch(x: np.ndarray) -> None:
    """ValueError, with counts and features, if the (N, D) training batch holds NaN or inf."""
    if not np.isfinite(x).all():
        raise ValueError(
            _("x has {value}: a training batch must be finite. One NaN or inf "
            "makes its feature's batch mean and variance NaN, so every output of that feature "
            "and a layer's running statistics would be NaN (for good). Find where they come "
            "from: np.isfinite(x).all(axis=0) is False for exactly those features.").format(value=_non_finite_summary(x))
        )


_POISONED = {
    "running_mean": " (running statistics poisoned by a non-finite training batch?)",
    "running_var": " (running statistics poisoned by a non-finite training batch?)",
}


def _check_per_feature(array, num_features: int, name: str, dtype) -> np.ndarray:
    """Check that ``array`` holds one finite value per feature, shape (num_features,)."""
    array = np.asarray(array)
    if array.shape != (num_features,):
        raise ValueError(
            _("{name} must have shape ({num_features},), one value per feature, "
            "got shape {shape}").format(name=name, num_features=num_features, shape=array.shape)
        )
    array = array.astype(dtype, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(
            _("{name} must be finite (one value per feature), but it has "
            "{value}{value2}").format(name=name, value=_non_finite_summary(array), value2=_POISONED.get(name, ''))
        )
    return array


def _check_non_negative(array: np.ndarray, name: str) -> None:
    if np.any(array < 0):
        raise ValueError(
            _("{name} must be non-negative (it is a variance), but it is negative in "
            "{value}").format(name=name, value=_features(np.flatnonzero(array < 0)))
        )


def _check_batch_of_more_than_one(values_per_feature: int, what: str) -> None:
    if values_per_feature < 2:
        raise ValueError(
            _("batch normalization in training needs more than one value per feature to "
            "compute a variance; got {what} = {values_per_feature}. Use a batch of at "
            "least 2 (or batchnorm_inference / eval mode for a single example).").format(what=what, values_per_feature=values_per_feature)
        )


# ----------------------------------------------------------------------------------------
# The fully connected case: x is (N, D)
# ----------------------------------------------------------------------------------------


@dataclass
class BatchNormCache:
    """What the forward pass keeps for the backward pass (x is (N, D)).

    Attributes, one per node of the computational graph:
        x:       (N, D) the input
        mu:      (D,)   batch mean
        xc:      (N, D) centred input, x - mu
        var:     (D,)   biased batch variance, mean(xc ** 2)
        std:     (D,)   sqrt(var + eps)
        inv_std: (D,)   1 / std
        x_hat:   (N, D) normalized input, xc * inv_std
        gamma:   (D,)   scale
        beta:    (D,)   shift
        eps:     float

    For float16 input every node but x is float32 (the precision the arithmetic ran in).
    """

    x: np.ndarray
    mu: np.ndarray
    xc: np.ndarray
    var: np.ndarray
    std: np.ndarray
    inv_std: np.ndarray
    x_hat: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    eps: float


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch-normalize a mini-batch in training mode (the paper's Algorithm 1).

    Args:
        x:     (N, D) mini-batch, N >= 2
        gamma: (D,) scale
        beta:  (D,) shift
        eps:   small positive number added to the variance

    Returns:
        out:   (N, D) gamma * (x - mean) / sqrt(var + eps) + beta, with the batch's
               mean and biased variance, in the floating dtype of x
        cache: BatchNormCache for ``batchnorm_backward`` / ``batchnorm_backward_compact``
    """
    x = _as_float_array(x, "x")
    _check_ndim(x, 2, "(N, D)")
    eps = _check_eps(eps)
    n, d = x.shape
    _check_batch_of_more_than_one(n, "N")
    dtype = _working_dtype(x.dtype)  # float16 is computed in float32
    x_in = x
    x = x.astype(dtype, copy=False)
    gamma = _check_per_feature(gamma, d, "gamma", dtype)
    beta = _check_per_feature(beta, d, "beta", dtype)

    # Pass 1: the mean. Subtract one sample first ("shifted data"): the differences are
    # small numbers, so their mean and the deviations from it stay accurate even in float32
    # when the mean is large compared with the spread. Any sample works as the shift.
    # (NaN, inf or overflowing squares are caught just below, with a message that says
    # which features; numpy's own warnings about them would only get in the way.)
    with np.errstate(invalid="ignore", over="ignore"):
        shift = x[0]  # (D,)
        xc = x - shift  # (N, D) shifted data
        shifted_mean = xc.mean(axis=0)  # (D,)
        xc -= shifted_mean  # (N, D) now x - mu (in place: no new array)
        mu = shift + shifted_mean  # (D,)
        # Pass 2: the biased variance, the mean of squared deviations. einsum sums xc * xc
        # over the batch without building the (N, D) array of squares.
        var = np.einsum("ij,ij->j", xc, xc) / n  # (D,)
        std = np.sqrt(var + eps)  # (D,)
    if not np.isfinite(std).all():
        # NaN or inf in x (refused), or finite values whose squares overflow (rescaled);
        # either makes var, and so std, NaN or inf (a non-finite mean passes into xc and var)
        _check_finite_batch(x)
        mu, xc, var, std = _statistics_of_huge_values(x, eps)
    inv_std = 1.0 / std  # (D,)
    x_hat = xc * inv_std  # (N, D)
    out = x_hat * gamma  # (N, D)
    out += beta  # in place

    cache = BatchNormCache(
        x=x_in, mu=mu, xc=xc, var=var, std=std, inv_std=inv_std,
        x_hat=x_hat, gamma=gamma, beta=beta, eps=eps,
    )
    return out.astype(x_in.dtype, copy=False), cache


def _statistics_of_huge_values(x: np.ndarray, eps: float):
    """mu, xc, var, std (as in ``batchnorm_forward``) of a finite (N, D) batch whose squares
    overflow: beyond about 1e19 in float32, 1e154 in float64.

    BN does not depend on the scale of x, so divide each feature by a power of two near its
    largest |value| (exact: no rounding), take the two-pass statistics of the scaled values
    y, and scale back: std = s * sqrt(var_y + eps / s**2) fits even when var = s**2 * var_y
    does not (var is then inf, as it truly exceeds the largest float).
    """
    n = x.shape[0]
    _mantissa, exponent = np.frexp(np.abs(x).max(axis=0))  # largest |x| = m * 2**exponent, 0.5 <= m < 1
    scale = np.ldexp(np.ones(x.shape[1], dtype=x.dtype), exponent - 1)  # (D,) so |y| < 2
    y = x / scale  # (N, D)
    yc = y - y[0]  # (N, D) the same two passes as batchnorm_forward, on y
    shifted_mean = yc.mean(axis=0)  # (D,)
    yc -= shifted_mean
    y_mean = y[0] + shifted_mean  # (D,)
    y_var = np.einsum("ij,ij->j", yc, yc) / n  # (D,)
    with np.errstate(over="ignore"):
        xc = yc * scale  # (N, D)
        var = y_var * scale * scale  # (D,) inf where it does not fit
    if not np.isfinite(xc).all():
        raise ValueError(
            _("x spans more than the largest {dtype} number in "
            "{value}: x - mean overflows. "
            "Rescale x (BN does not depend on its scale).").format(dtype=x.dtype, value=_features(np.flatnonzero(~np.isfinite(xc).all(axis=0))))
        )
    std = np.sqrt(y_var + eps / scale / scale) * scale  # (D,)
    return y_mean * scale, xc, var, std


def batchnorm_backward(dout, cache: BatchNormCache):
    """Backward pass, node by node through the computational graph of the forward pass.

    The forward graph, one node per line:
        mu      = mean(x)              (D,)
        xc      = x - mu               (N, D)
        var     = mean(xc ** 2)        (D,)
        std     = sqrt(var + eps)      (D,)
        inv_std = 1 / std              (D,)
        x_hat   = xc * inv_std         (N, D)
        out     = gamma * x_hat + beta (N, D)

    Args:
        dout:  (N, D) upstream gradient dL/dout
        cache: from ``batchnorm_forward``

    Returns:
        dx (N, D), dgamma (D,), dbeta (D,)
    """
    cache = _check_cache(cache)
    dout = _check_upstream(dout, cache.x.shape)
    _check_variance_fits(cache)
    dtype = dout.dtype
    dout = dout.astype(_working_dtype(dtype), copy=False)  # float16 is computed in float32
    n = cache.x.shape[0]
    inv_std = cache.inv_std.astype(dout.dtype)
    std = cache.std.astype(dout.dtype)

    # out = gamma * x_hat + beta: beta and gamma are shared by all N rows, so sum over them
    dbeta = dout.sum(axis=0)  # (D,)
    dgamma = (dout * cache.x_hat).sum(axis=0)  # (D,)
    dx_hat = dout * cache.gamma  # (N, D)

    # x_hat = xc * inv_std: xc gets one gradient here, inv_std (shared) sums over rows
    dxc = dx_hat * inv_std  # (N, D)   first path into xc
    dinv_std = (dx_hat * cache.xc).sum(axis=0)  # (D,)

    # inv_std = 1 / std
    dstd = -dinv_std / std**2  # (D,)
    # std = sqrt(var + eps)
    dvar = dstd * 0.5 / std  # (D,)
    # var = mean(xc ** 2) = (1/N) sum_i xc_i ** 2: every row receives dvar / N * 2 xc_i
    dxc = dxc + (2.0 / n) * cache.xc * dvar  # (N, D)   second path into xc

    # xc = x - mu: x gets dxc directly; mu (shared) gets minus the row sum
    dmu = -dxc.sum(axis=0)  # (D,)
    # mu = mean(x) = (1/N) sum_i x_i: every row receives dmu / N
    dx = dxc + dmu / n  # (N, D)
    return _as_dtype(dtype, dx, dgamma, dbeta)


def batchnorm_backward_compact(dout, cache: BatchNormCache):
    """Backward pass in closed form.

    With dbeta = sum_i dout_i and dgamma = sum_i dout_i * x_hat_i (sums over the batch):

        dx = gamma / (N * sqrt(var + eps)) * (N * dout - dbeta - x_hat * dgamma)

    Args:
        dout:  (N, D) upstream gradient dL/dout
        cache: from ``batchnorm_forward``

    Returns:
        dx (N, D), dgamma (D,), dbeta (D,)
    """
    cache = _check_cache(cache)
    dout = _check_upstream(dout, cache.x.shape)
    dtype = dout.dtype
    dout = dout.astype(_working_dtype(dtype), copy=False)  # float16 is computed in float32
    n = cache.x.shape[0]
    dbeta = dout.sum(axis=0)  # (D,)
    dgamma = np.einsum("ij,ij->j", dout, cache.x_hat)  # (D,) sum of dout * x_hat, no temporary
    # The same formula, rearranged to fill one (N, D) buffer in place:
    # dx = gamma / sqrt(var + eps) * (dout - (dbeta + x_hat * dgamma) / N)
    dx = cache.x_hat * (dgamma / n)  # (N, D)
    dx += dbeta / n
    np.subtract(dout, dx, out=dx)
    dx *= cache.gamma * cache.inv_std
    return _as_dtype(dtype, dx, dgamma, dbeta)


def _check_upstream(dout, shape) -> np.ndarray:
    dout = _as_float_array(dout, "dout")
    if dout.shape != shape:
        raise ValueError(_("dout must have the shape of the forward output {shape}, got {shape2}").format(shape=shape, shape2=dout.shape))
    return dout


def _is_spatial_cache(cache) -> bool:
    return (isinstance(cache, tuple) and len(cache) == 2
            and isinstance(cache[0], BatchNormCache) and isinstance(cache[1], tuple))


def _what_the_cache_is(cache) -> str:
    if isinstance(cache, BatchNormCache):
        return ("got the BatchNormCache of batchnorm_forward, which belongs to batchnorm_backward "
                "or batchnorm_backward_compact")
    if _is_spatial_cache(cache):
        return "got the cache of spatial_batchnorm_forward, which belongs to spatial_batchnorm_backward"
    if isinstance(cache, tuple) and len(cache) == 2 and isinstance(cache[0], np.ndarray):
        return "got a tuple, the whole (out, cache) result of the forward pass: pass only its second item"
    return "got None" if cache is None else f"got a {type(cache).__name__}"


def _check_cache(cache) -> BatchNormCache:
    if not isinstance(cache, BatchNormCache):
        raise TypeError(
            f"cache must be the BatchNormCache that batchnorm_forward returns second; "
            f"{_what_the_cache_is(cache)}. Use: out, cache = batchnorm_forward(x, gamma, beta); "
            f"dx, dgamma, dbeta = batchnorm_backward(dout, cache)"
        )
    return cache


def _check_variance_fits(cache: BatchNormCache) -> None:
    """The node-by-node backward works with var itself: it must be a finite number."""
    if not np.isfinite(cache.var).all():
        raise ValueError(
            _("the batch variance of {value} "
            "overflows {dtype} (the values are too large to square): the node-by-node "
            "backward needs var, std**2 and 1 / std**3, which do not fit. "
            "batchnorm_backward_compact works from x_hat and 1 / std alone and gives the gradient; "
            "or rescale x.").format(value=_features(np.flatnonzero(~np.isfinite(cache.var))), dtype=cache.var.dtype)
        )


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5):
    """Batch normalization at inference: normalize with stored (running) statistics.

    The transform is a fixed affine map per feature,
    out = gamma * (x - running_mean) / sqrt(running_var + eps) + beta,
    so each example's output depends on that example alone (a batch of one is fine).

    Args:
        x:            (N, D), or (N, C, H, W) with one statistic per channel
        gamma, beta:  (D,) or (C,)
        running_mean: (D,) or (C,)
        running_var:  (D,) or (C,), the unbiased running variance
        eps:          small positive number added to the variance

    Returns:
        out: same shape and floating dtype as x
    """
    x = _as_float_array(x, "x")
    if x.ndim not in (2, 4):
        raise ValueError(_("x must have shape (N, D) or (N, C, H, W), got shape {shape}").format(shape=x.shape))
    eps = _check_eps(eps)
    c = x.shape[1]
    gamma = _check_per_feature(gamma, c, "gamma", np.float64)
    beta = _check_per_feature(beta, c, "beta", np.float64)
    running_mean = _check_per_feature(running_mean, c, "running_mean", np.float64)
    running_var = _check_per_feature(running_var, c, "running_var", np.float64)
    _check_non_negative(running_var, "running_var")

    # One multiply and one add per value: scale = gamma / sqrt(var + eps), shift = beta - scale * mean
    with np.errstate(over="ignore"):  # checked just below
        scale = gamma / np.sqrt(running_var + eps)  # (C,)
        shift = beta - scale * running_mean  # (C,)
    if not np.isfinite(scale).all():
        raise ValueError(
            _("gamma / sqrt(running_var + eps) overflows float64 in "
            "{value}: gamma is too large").format(value=_features(np.flatnonzero(~np.isfinite(scale))))
        )
    if not np.isfinite(shift).all():
        # scale * running_mean overflowed (a huge running mean): the longer form
        # gamma * (x - mean) / std + beta, halving first so that x - mean cannot overflow
        # (a finite input never becomes inf - inf = NaN)
        half_centred = x * 0.5 - _per_channel(running_mean * 0.5, x.ndim)
        out = half_centred * _per_channel(scale, x.ndim) * 2.0 + _per_channel(beta, x.ndim)
        return out.astype(x.dtype, copy=False)
    out = x * _per_channel(scale, x.ndim) + _per_channel(shift, x.ndim)
    return out.astype(x.dtype, copy=False)


def _per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    """Shape (C,) values to broadcast along axis 1 of an (N, C), (N, C, L) or (N, C, H, W) array."""
    return values.reshape((-1,) + (1,) * (ndim - 2))


def update_running_stats(running_mean, running_var, batch_mean, batch_var, n, momentum=0.1):
    """One step of the running (exponential moving average) statistics, torch's convention.

        running_mean <- (1 - momentum) * running_mean + momentum * batch_mean
        running_var  <- (1 - momentum) * running_var  + momentum * batch_var * n / (n - 1)

    The batch variance used for normalization is biased (divides by n); the running
    variance estimates the population variance, so it stores the unbiased n / (n - 1) version.
    (For torch's ``momentum=None``, the cumulative average, pass momentum = 1 / t for the
    t-th batch; the ``BatchNorm`` layer does this for you.)

    Args:
        running_mean, running_var: (D,) current estimates
        batch_mean, batch_var:     (D,) this batch's mean and *biased* variance
        n:        number of values per feature in the batch (N, or N * H * W), n >= 2
        momentum: weight of the new batch, 0 <= momentum <= 1

    Returns:
        (new_running_mean, new_running_var): new (D,) float64 arrays; the inputs are not modified
    """
    running_mean = np.asarray(running_mean, dtype=np.float64)
    d = running_mean.shape[0] if running_mean.ndim == 1 else None
    if d is None:
        raise ValueError(_("running_mean must have shape (D,), got shape {shape}").format(shape=running_mean.shape))
    running_mean = _check_per_feature(running_mean, d, "running_mean", np.float64)
    running_var = _check_per_feature(running_var, d, "running_var", np.float64)
    batch_mean = _check_per_feature(batch_mean, d, "batch_mean", np.float64)
    batch_var = _check_per_feature(batch_var, d, "batch_var", np.float64)
    _check_non_negative(running_var, "running_var")
    _check_non_negative(batch_var, "batch_var")
    expected_n = "an integer >= 2 for the unbiased factor n / (n - 1)"
    n_value = _check_number(n, "n, the number of values per feature in the batch,", expected_n)
    if not np.isfinite(n_value) or int(n_value) != n_value or n_value < 2:
        raise ValueError(
            _("n, the number of values per feature in the batch, must be {expected_n}; got {n!r}").format(expected_n=expected_n, n=n)
        )
    expected_momentum = "a number in [0, 1] (torch's default is 0.1)"
    if momentum is None:
        raise ValueError(
            _("momentum must be {expected_momentum}, got None (for torch's momentum=None, "
            "the cumulative average, pass momentum = 1 / t for the t-th batch)").format(expected_momentum=expected_momentum)
        )
    momentum = _check_momentum(momentum, expected_momentum)
    unbiased_var = batch_var * n / (n - 1)
    new_mean = (1.0 - momentum) * running_mean + momentum * batch_mean
    new_var = (1.0 - momentum) * running_var + momentum * unbiased_var
    if not np.isfinite(new_var).all():
        raise ValueError(
            _("the new running_var overflows float64 in "
            "{value}: the batch variance is too large").format(value=_features(np.flatnonzero(~np.isfinite(new_var))))
        )
    return new_mean, new_var


# ----------------------------------------------------------------------------------------
# The convolutional case: x is (N, C, H, W), statistics per channel over N, H and W
# ----------------------------------------------------------------------------------------


def _channels_last_2d(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N * H * W, C): every pixel of every image becomes a row.

    Built as (N, C, H, W) -> (C, N, H, W) -> (C, N * H * W), then transposed: one copy,
    and each channel's N * H * W values stay side by side in memory, so the per-channel
    sums of the 2-D code run over contiguous data.
    """
    n, c, h, w = x.shape
    return x.transpose(1, 0, 2, 3).reshape(c, n * h * w).T


def _channels_first_4d(rows: np.ndarray, shape) -> np.ndarray:
    """(N * H * W, C) -> (N, C, H, W), the inverse of ``_channels_last_2d``."""
    n, c, h, w = shape
    return rows.T.reshape(c, n, h, w).transpose(1, 0, 2, 3)


def spatial_batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch normalization for convolutional feature maps, in training mode.

    Each channel has one mean, one variance and one (gamma, beta), shared by all
    N * H * W positions, so we reshape to (N * H * W, C) and reuse the 2-D version.

    Args:
        x:     (N, C, H, W), with N * H * W >= 2
        gamma: (C,) scale
        beta:  (C,) shift
        eps:   small positive number added to the variance

    Returns:
        out:   (N, C, H, W)
        cache: for ``spatial_batchnorm_backward``
    """
    x = _as_float_array(x, "x")
    _check_ndim(x, 4, "(N, C, H, W)")
    n, c, h, w = x.shape
    _check_batch_of_more_than_one(n * h * w, "N * H * W")
    out_rows, cache = batchnorm_forward(_channels_last_2d(x), gamma, beta, eps)
    return _channels_first_4d(out_rows, x.shape), (cache, x.shape)


def spatial_batchnorm_backward(dout, cache):
    """Backward pass of ``spatial_batchnorm_forward``, via the 2-D closed form.

    Args:
        dout:  (N, C, H, W) upstream gradient
        cache: from ``spatial_batchnorm_forward``

    Returns:
        dx (N, C, H, W), dgamma (C,), dbeta (C,)
    """
    if not _is_spatial_cache(cache):
        raise TypeError(
            f"cache must be the cache that spatial_batchnorm_forward returns second; "
            f"{_what_the_cache_is(cache)}. Use: out, cache = spatial_batchnorm_forward(x, gamma, "
            f"beta); dx, dgamma, dbeta = spatial_batchnorm_backward(dout, cache)"
        )
    cache_2d, shape = cache
    dout = _check_upstream(dout, shape)
    dx_rows, dgamma, dbeta = batchnorm_backward_compact(_channels_last_2d(dout), cache_2d)
    return _channels_first_4d(dx_rows, shape), dgamma, dbeta


# ----------------------------------------------------------------------------------------
# Folding BN into the layer before it
# ----------------------------------------------------------------------------------------


def fold_batchnorm(weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
    """Fold an inference-mode BN into the preceding Linear or Conv layer.

    At inference BN is y = scale * (z - running_mean) + beta with
    scale = gamma / sqrt(running_var + eps). If z = W u + b, then
    y = (scale * W) u + (scale * (b - running_mean) + beta): one layer does both.

    Args:
        weight: (out, in) for Linear or (out, in, kh, kw) for Conv; axis 0 is the output feature
        bias:   (out,) or None (a layer without bias)
        gamma, beta, running_mean, running_var: (out,)
        eps:    the BN layer's eps

    Returns:
        (folded_weight, folded_bias): new arrays of shapes weight.shape and (out,)
    """
    weight = _as_float_array(weight, "weight")
    if weight.ndim < 2:
        raise ValueError(
            _("weight must be (out, in) or (out, in, kh, kw) with the output features on "
            "axis 0, got shape {shape}").format(shape=weight.shape)
        )
    eps = _check_eps(eps)
    out_features = weight.shape[0]
    dtype = weight.dtype
    bias = (
        np.zeros(out_features, dtype=dtype)
        if bias is None
        else _check_per_feature(bias, out_features, "bias", dtype)
    )
    gamma = _check_per_feature(gamma, out_features, "gamma", np.float64)
    beta = _check_per_feature(beta, out_features, "beta", np.float64)
    running_mean = _check_per_feature(running_mean, out_features, "running_mean", np.float64)
    running_var = _check_per_feature(running_var, out_features, "running_var", np.float64)
    _check_non_negative(running_var, "running_var")

    scale = gamma / np.sqrt(running_var + eps)  # (out,)
    scale_per_row = scale.reshape((out_features,) + (1,) * (weight.ndim - 1))
    folded_weight = (weight * scale_per_row).astype(dtype, copy=False)
    folded_bias = (scale * (bias - running_mean) + beta).astype(dtype, copy=False)
    return folded_weight, folded_bias


# ----------------------------------------------------------------------------------------
# A layer that behaves like torch.nn.BatchNorm1d / BatchNorm2d
# ----------------------------------------------------------------------------------------


class BatchNorm:
    """A numpy BatchNorm layer that behaves like ``torch.nn.BatchNorm1d`` on (N, C) and
    (N, C, L) and ``torch.nn.BatchNorm2d`` on (N, C, H, W).

    Attributes:
        gamma, beta:          (C,) learnable scale and shift (torch's weight and bias);
                              None when affine=False
        running_mean:         (C,) exponential moving average of batch means
        running_var:          (C,) same for the unbiased batch variances
        num_batches_tracked:  how many training batches have updated the running statistics
                              (these three are None when track_running_stats=False)
        training:             True in training mode (batch statistics), False in eval mode
        dgamma, dbeta:        (C,) gradients set by ``backward`` (None when affine=False)

    Args:
        num_features: C, the number of features or channels
        eps:          added to the variance before the square root
        momentum:     weight of each new batch in the running statistics (torch convention);
                      None for the cumulative average over all batches seen
        affine:       learn gamma and beta (False: gamma = 1 and beta = 0, fixed)
        track_running_stats: keep running statistics; without them the layer uses the
                      batch statistics in eval mode too

    As in torch, an empty batch (N = 0, or L, H or W = 0) gives an empty output and zero
    dgamma and dbeta; in training it changes no running statistic but still counts in
    num_batches_tracked. Unlike torch, a forward pass that fails (a batch of one, NaN or inf
    in a training batch) changes nothing, num_batches_tracked included.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        if momentum is not None:
            _check_momentum(momentum, "None or a number in [0, 1]")
        self.num_features = _check_num_features(num_features)
        self.eps = _check_eps(eps)
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self.gamma = self.beta = None
        self.running_mean = self.running_var = self.num_batches_tracked = None
        self.reset_parameters()
        self.training = True
        self.dgamma = None
        self.dbeta = None
        self._saved = None  # what backward needs from the last forward: (kind, shape, data)
        self._last_forward_failed = False

    # -- modes and state -----------------------------------------------------------------
    def train(self, mode: bool = True) -> BatchNorm:
        """Switch to training mode (batch statistics, running statistics updated)."""
        self.training = bool(mode)
        return self

    def eval(self) -> BatchNorm:
        """Switch to evaluation mode (running statistics, nothing updated)."""
        return self.train(False)

    def reset_running_stats(self) -> None:
        """running_mean = 0, running_var = 1, num_batches_tracked = 0 (if they are tracked)."""
        if self.track_running_stats:
            self.running_mean = np.zeros(self.num_features)
            self.running_var = np.ones(self.num_features)
            self.num_batches_tracked = 0

    def reset_parameters(self) -> None:
        """reset_running_stats(), and gamma = 1, beta = 0 (if affine)."""
        self.reset_running_stats()
        if self.affine:
            self.gamma = np.ones(self.num_features)
            self.beta = np.zeros(self.num_features)

    # -- forward -------------------------------------------------------------------------
    def forward(self, x):
        """Normalize x: (N, C), (N, C, L) or (N, C, H, W). Returns an array of the same shape.

        Batch statistics in training mode (and always when track_running_stats=False),
        the running statistics in eval mode.
        """
        self._saved, self._last_forward_failed = None, True  # until this forward succeeds
        x = _as_float_array(x, "x")
        if x.ndim not in (2, 3, 4):
            raise ValueError(
                _("x must have shape (N, C), (N, C, L) or (N, C, H, W), got shape {shape}").format(shape=x.shape)
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                _("x must have {num_features} features on axis 1 (this layer's "
                "num_features), got shape {shape}").format(num_features=self.num_features, shape=x.shape)
            )
        if x.size == 0:
            out = self._forward_empty(x)
        elif self.training or not self.track_running_stats:
            out = self._forward_batch_statistics(x)
        else:
            out = self._forward_running_statistics(x)
        self._last_forward_failed = False
        return out

    __call__ = forward

    def _gamma_and_beta(self):
        if self.affine:
            return self.gamma, self.beta
        return np.ones(self.num_features), np.zeros(self.num_features)

    def _forward_empty(self, x):
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1  # torch counts an empty batch, though it updates nothing
        self._saved = ("empty", x.shape, None)
        return np.empty_like(x)

    def _forward_batch_statistics(self, x):
        values_per_feature = x.size // self.num_features  # N, N * L, or N * H * W
        _check_batch_of_more_than_one(values_per_feature, {2: "N", 3: "N * L", 4: "N * H * W"}[x.ndim])
        gamma, beta = self._gamma_and_beta()
        if x.ndim == 2:
            out, cache = batchnorm_forward(x, gamma, beta, self.eps)
            cache_2d = cache
        else:  # (N, C, L) is (N, C, L, 1) to the spatial version
            x_4d = x if x.ndim == 4 else x[..., None]
            out, cache = spatial_batchnorm_forward(x_4d, gamma, beta, self.eps)
            out, cache_2d = out.reshape(x.shape), cache[0]
        if self.training and self.track_running_stats:
            self._update_running_stats(cache_2d, values_per_feature)
        self._saved = ("batch statistics", x.shape, cache)
        return out

    def _update_running_stats(self, cache_2d, values_per_feature):
        if not np.isfinite(cache_2d.var).all():
            raise ValueError(
                _("the batch variance overflows (the values are too large to square), so "
                "running_var cannot hold it: rescale x. The running statistics are unchanged.")
            )
        if self.momentum is None:  # cumulative average: the t-th batch gets weight 1 / t
            factor = 1.0 / (self.num_batches_tracked + 1)
        else:
            factor = self.momentum
        self.running_mean, self.running_var = update_running_stats(
            self.running_mean, self.running_var, cache_2d.mu, cache_2d.var,
            values_per_feature, factor,
        )
        self.num_batches_tracked += 1

    def _forward_running_statistics(self, x):
        gamma, beta = self._gamma_and_beta()
        x_4d = x if x.ndim != 3 else x[..., None]  # batchnorm_inference takes 2 or 4 dimensions
        zero, one = np.zeros(self.num_features), np.ones(self.num_features)
        # keep x_hat for backward's dgamma, and the scale for dx (all the eval-mode gradients need)
        x_hat = batchnorm_inference(x_4d, one, zero, self.running_mean, self.running_var, self.eps)
        inv_std = 1.0 / np.sqrt(self.running_var + self.eps)  # (C,)
        self._saved = ("running statistics", x.shape, (x_hat.reshape(x.shape), gamma * inv_std))
        out = batchnorm_inference(x_4d, gamma, beta, self.running_mean, self.running_var, self.eps)
        return out.reshape(x.shape)

    # -- backward ------------------------------------------------------------------------
    def backward(self, dout):
        """Gradient of the loss with respect to the last forward's input.

        Sets ``self.dgamma`` and ``self.dbeta`` (C,) and returns dx, shaped like x. As in
        torch, the gradient is that of the forward pass that ran, in the mode it ran in
        (switching train / eval in between changes nothing). In eval mode the layer is a
        fixed affine map, so dx = dout * gamma / sqrt(running_var + eps).
        """
        if self._saved is None:
            raise ValueError(
                "backward needs a forward pass first"
                + (": the last call to forward failed, so there is nothing to differentiate; "
                   "call forward again" if self._last_forward_failed else "")
            )
        kind, shape, saved = self._saved
        dout = _check_upstream(dout, shape)
        axes = tuple(axis for axis in range(dout.ndim) if axis != 1)  # all but the channels
        if kind == "empty":
            dx = np.zeros(shape, dtype=dout.dtype)
            dgamma, dbeta = np.zeros(self.num_features), np.zeros(self.num_features)
        elif kind == "batch statistics":
            if dout.ndim == 2:
                dx, dgamma, dbeta = batchnorm_backward_compact(dout, saved)
            else:
                dx, dgamma, dbeta = spatial_batchnorm_backward(dout.reshape(saved[1]), saved)
                dx = dx.reshape(shape)
        else:
            # Eval mode: out = gamma * x_hat + beta with x_hat = (x - running_mean) * inv_std,
            # where running_mean and inv_std are constants, so dx is just a per-feature scaling.
            x_hat, scale = saved
            dbeta = dout.sum(axis=axes)
            dgamma = (dout * x_hat).sum(axis=axes)
            dx = dout * _per_channel(scale, dout.ndim)
        self.dgamma, self.dbeta = (dgamma, dbeta) if self.affine else (None, None)
        return dx

    def __repr__(self) -> str:
        options = "" if self.affine else ", affine=False"
        options += "" if self.track_running_stats else ", track_running_stats=False"
        return (
            f"BatchNorm({self.num_features}, eps={self.eps}, momentum={self.momentum}{options}, "
            f"training={self.training})"
        )
