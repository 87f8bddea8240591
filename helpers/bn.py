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
keeps float32 accurate too. Everything is computed in the floating dtype of ``x``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def _check_eps(eps) -> float:
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive number (the default is 1e-5), got {eps!r}")
    return float(eps)


def _check_ndim(x: np.ndarray, ndim: int, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"x must have {ndim} dimensions {layout}, got shape {x.shape}")


def _check_per_feature(array, num_features: int, name: str, dtype) -> np.ndarray:
    """Check that ``array`` holds one value per feature, shape (num_features,)."""
    array = np.asarray(array)
    if array.shape != (num_features,):
        raise ValueError(
            f"{name} must have shape ({num_features},), one value per feature, "
            f"got shape {array.shape}"
        )
    return array.astype(dtype, copy=False)


def _check_batch_of_more_than_one(values_per_feature: int, what: str) -> None:
    if values_per_feature < 2:
        raise ValueError(
            f"batch normalization in training needs more than one value per feature to "
            f"compute a variance; got {what} = {values_per_feature}. Use a batch of at "
            f"least 2 (or batchnorm_inference / eval mode for a single example)."
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
    gamma = _check_per_feature(gamma, d, "gamma", x.dtype)
    beta = _check_per_feature(beta, d, "beta", x.dtype)

    # Pass 1: the mean. Subtract one sample first ("shifted data"): the differences are
    # small numbers, so their mean and the deviations from it stay accurate even in float32
    # when the mean is large compared with the spread. Any sample works as the shift.
    shift = x[0]  # (D,)
    xc = x - shift  # (N, D) shifted data
    shifted_mean = xc.mean(axis=0)  # (D,)
    xc -= shifted_mean  # (N, D) now x - mu (in place: no new array)
    mu = shift + shifted_mean  # (D,)
    # Pass 2: the biased variance, the mean of squared deviations. einsum sums xc * xc
    # over the batch without building the (N, D) array of squares.
    var = np.einsum("ij,ij->j", xc, xc) / n  # (D,)
    std = np.sqrt(var + eps)  # (D,)
    inv_std = 1.0 / std  # (D,)
    x_hat = xc * inv_std  # (N, D)
    out = x_hat * gamma  # (N, D)
    out += beta  # in place

    cache = BatchNormCache(
        x=x, mu=mu, xc=xc, var=var, std=std, inv_std=inv_std,
        x_hat=x_hat, gamma=gamma, beta=beta, eps=eps,
    )
    return out, cache


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
    dout = _check_upstream(dout, cache.x.shape)
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
    return dx, dgamma, dbeta


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
    dout = _check_upstream(dout, cache.x.shape)
    n = cache.x.shape[0]
    dbeta = dout.sum(axis=0)  # (D,)
    dgamma = np.einsum("ij,ij->j", dout, cache.x_hat)  # (D,) sum of dout * x_hat, no temporary
    # The same formula, rearranged to fill one (N, D) buffer in place:
    # dx = gamma / sqrt(var + eps) * (dout - (dbeta + x_hat * dgamma) / N)
    dx = cache.x_hat * (dgamma / n)  # (N, D)
    dx += dbeta / n
    np.subtract(dout, dx, out=dx)
    dx *= cache.gamma * cache.inv_std
    return dx, dgamma, dbeta


def _check_upstream(dout, shape) -> np.ndarray:
    dout = _as_float_array(dout, "dout")
    if dout.shape != shape:
        raise ValueError(f"dout must have the shape of the forward output {shape}, got {dout.shape}")
    return dout


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
        raise ValueError(f"x must have shape (N, D) or (N, C, H, W), got shape {x.shape}")
    eps = _check_eps(eps)
    c = x.shape[1]
    gamma = _check_per_feature(gamma, c, "gamma", np.float64)
    beta = _check_per_feature(beta, c, "beta", np.float64)
    running_mean = _check_per_feature(running_mean, c, "running_mean", np.float64)
    running_var = _check_per_feature(running_var, c, "running_var", np.float64)
    if np.any(running_var < 0):
        raise ValueError("running_var must be non-negative (it is a variance)")

    # One multiply and one add per value: scale = gamma / sqrt(var + eps), shift = beta - scale * mean
    scale = gamma / np.sqrt(running_var + eps)  # (C,)
    shift = beta - scale * running_mean  # (C,)
    out = x * _per_channel(scale, x.ndim) + _per_channel(shift, x.ndim)
    return out.astype(x.dtype, copy=False)


def _per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    """Shape (C,) values to broadcast along axis 1 of an (N, C) or (N, C, H, W) array."""
    return values if ndim == 2 else values[:, None, None]


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
        raise ValueError(f"running_mean must have shape (D,), got shape {running_mean.shape}")
    running_var = _check_per_feature(running_var, d, "running_var", np.float64)
    batch_mean = _check_per_feature(batch_mean, d, "batch_mean", np.float64)
    batch_var = _check_per_feature(batch_var, d, "batch_var", np.float64)
    if int(n) != n or n < 2:
        raise ValueError(
            f"n, the number of values per feature in the batch, must be an integer >= 2 "
            f"for the unbiased factor n / (n - 1); got {n!r}"
        )
    if momentum is None or not 0.0 <= momentum <= 1.0:
        raise ValueError(
            f"momentum must be a number in [0, 1] (torch's default is 0.1), got {momentum!r}"
        )
    unbiased_var = batch_var * n / (n - 1)
    new_mean = (1.0 - momentum) * running_mean + momentum * batch_mean
    new_var = (1.0 - momentum) * running_var + momentum * unbiased_var
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
            f"weight must be (out, in) or (out, in, kh, kw) with the output features on "
            f"axis 0, got shape {weight.shape}"
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
    ``torch.nn.BatchNorm2d`` on (N, C, H, W).

    Attributes:
        gamma, beta:          (C,) learnable scale and shift (torch's weight and bias)
        running_mean:         (C,) exponential moving average of batch means
        running_var:          (C,) same for the unbiased batch variances
        num_batches_tracked:  how many training batches have updated the running statistics
        training:             True in training mode (batch statistics), False in eval mode
        dgamma, dbeta:        (C,) gradients set by ``backward``

    Args:
        num_features: C, the number of features or channels
        eps:          added to the variance before the square root
        momentum:     weight of each new batch in the running statistics (torch convention);
                      None for the cumulative average over all batches seen
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        if int(num_features) != num_features or num_features < 1:
            raise ValueError(f"num_features must be a positive integer, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be None or a number in [0, 1], got {momentum!r}")
        self.num_features = int(num_features)
        self.eps = _check_eps(eps)
        self.momentum = momentum
        self.gamma = np.ones(self.num_features)
        self.beta = np.zeros(self.num_features)
        self.running_mean = np.zeros(self.num_features)
        self.running_var = np.ones(self.num_features)
        self.num_batches_tracked = 0
        self.training = True
        self.dgamma = None
        self.dbeta = None
        self._cache = None
        self._input_shape = None

    # -- modes ---------------------------------------------------------------------------
    def train(self, mode: bool = True) -> BatchNorm:
        """Switch to training mode (batch statistics, running statistics updated)."""
        self.training = bool(mode)
        return self

    def eval(self) -> BatchNorm:
        """Switch to evaluation mode (running statistics, nothing updated)."""
        return self.train(False)

    # -- forward -------------------------------------------------------------------------
    def forward(self, x):
        """Normalize x: (N, C) or (N, C, H, W). Returns an array of the same shape."""
        x = _as_float_array(x, "x")
        if x.ndim not in (2, 4):
            raise ValueError(f"x must have shape (N, C) or (N, C, H, W), got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"x must have {self.num_features} features on axis 1 (this layer's "
                f"num_features), got shape {x.shape}"
            )
        self._input_shape = x.shape
        if not self.training:
            # keep x_hat for backward's dgamma (all the eval-mode gradients need)
            zero, one = np.zeros(self.num_features), np.ones(self.num_features)
            self._cache = batchnorm_inference(
                x, one, zero, self.running_mean, self.running_var, self.eps
            )
            return batchnorm_inference(
                x, self.gamma, self.beta, self.running_mean, self.running_var, self.eps
            )

        if x.ndim == 2:
            out, cache = batchnorm_forward(x, self.gamma, self.beta, self.eps)
            cache_2d = cache
        else:
            out, cache = spatial_batchnorm_forward(x, self.gamma, self.beta, self.eps)
            cache_2d = cache[0]
        self._cache = cache
        values_per_feature = x.size // self.num_features  # N, or N * H * W

        self.num_batches_tracked += 1
        if self.momentum is None:  # cumulative average: the t-th batch gets weight 1 / t
            factor = 1.0 / self.num_batches_tracked
        else:
            factor = self.momentum
        self.running_mean, self.running_var = update_running_stats(
            self.running_mean, self.running_var, cache_2d.mu, cache_2d.var,
            values_per_feature, factor,
        )
        return out

    __call__ = forward

    # -- backward ------------------------------------------------------------------------
    def backward(self, dout):
        """Gradient of the loss with respect to the last forward's input.

        Sets ``self.dgamma`` and ``self.dbeta`` (C,) and returns dx, shaped like x.
        In eval mode the layer is a fixed affine map, so dx = dout * gamma / sqrt(running_var + eps).
        """
        if self._input_shape is None:
            raise ValueError("backward needs a forward pass first")
        dout = _check_upstream(dout, self._input_shape)
        if self.training:
            if dout.ndim == 2:
                dx, self.dgamma, self.dbeta = batchnorm_backward_compact(dout, self._cache)
            else:
                dx, self.dgamma, self.dbeta = spatial_batchnorm_backward(dout, self._cache)
            return dx

        # Eval mode: out = gamma * x_hat + beta with x_hat = (x - running_mean) * inv_std,
        # where running_mean and inv_std are constants, so dx is just a per-feature scaling.
        axes = (0,) if dout.ndim == 2 else (0, 2, 3)
        self.dbeta = dout.sum(axis=axes)
        self.dgamma = (dout * self._cache).sum(axis=axes)
        inv_std = 1.0 / np.sqrt(self.running_var + self.eps)  # (C,)
        return dout * _per_channel(self.gamma * inv_std, dout.ndim)

    def __repr__(self) -> str:
        return (
            f"BatchNorm({self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"training={self.training})"
        )
