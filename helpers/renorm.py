"""Batch Renormalization (Ioffe 2017) in numpy: forward, backward, running statistics, inference.

Batch normalization trains with the batch's statistics and infers with the running ones; when
batches are small or not representative (sorted, correlated) the two differ, and the network
meets at inference a transform it never trained with. Batch Renormalization corrects the batch
statistics towards the running ones during training (Ioffe 2017, Algorithm 1), for x (N, D):

    mu_B    = mean(x)                           sigma_B = sqrt(mean((x - mu_B)^2) + eps)
    r       = clip(sigma_B / sigma, 1/r_max, r_max)      (treated as a constant)
    d       = clip((mu_B - mu) / sigma, -d_max, d_max)   (treated as a constant)
    x_hat   = (x - mu_B) / sigma_B * r + d
    y       = gamma * x_hat + beta

where mu and sigma are the running mean and the running *standard deviation* (the paper keeps
sigma, not the variance; sigma_B includes eps). Unclipped, x_hat = (x - mu) / sigma: the
training output equals the inference output, while the gradient still flows through the batch
statistics. With r_max = 1 and d_max = 0 (how training starts), r = 1 and d = 0: plain batch
normalization. The running statistics follow the batch ones, mu += alpha (mu_B - mu) and
sigma += alpha (sigma_B - sigma) (alpha is torch's momentum). Inference:
y = gamma * (x - mu) / sigma + beta.

The backward pass treats r and d as constants ("stop_gradient" in the paper), so it is the
backward of BN scaled by r: it is *not* the gradient of the forward function as a whole, unless
both corrections sit at their clipping bounds (where they do not change with x). The tests check
it against centered differences of the forward with r and d held fixed.

numpy only; computed in the floating dtype of x (float64 in the tests, to 1e-9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.i18n import _

__all__ = [
    "BatchRenormCache",
    "batch_renorm_backward",
    "batch_renorm_forward",
    "batch_renorm_inference",
    "renorm_corrections",
    "renormalize",
    "update_renorm_statistics",
]


def _check_eps(eps) -> float:
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(_("eps must be a positive number (the default is 1e-5), got {eps!r}").format(eps=eps))
    return float(eps)


def _as_batch(x) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim != 2:
        raise ValueError(_("x must have 2 dimensions (N, D), got shape {x_shape}").format(x_shape=x.shape))
    if len(x) < 2:
        raise ValueError(
            _("batch renormalization in training needs at least 2 examples per feature "
              "to compute a variance, got N = {len_x} (use batch_renorm_inference for "
              "one example)").format(len_x=len(x))
        )
    return x


def _per_feature(array, d: int, name: str, dtype) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != (d,):
        raise ValueError(_("{name} must have shape ({d},), one value per feature, got shape "
                           "{array_shape}").format(name=name, d=d, array_shape=array.shape))
    return array.astype(dtype, copy=False)


def _check_limits(r_max, d_max) -> None:
    if not (np.isfinite(r_max) and r_max >= 1):
        raise ValueError(_("r_max must be a number >= 1 (r is clipped to [1/r_max, r_max]), got "
                           "{r_max!r}").format(r_max=r_max))
    if not (np.isfinite(d_max) and d_max >= 0):
        raise ValueError(_("d_max must be a number >= 0 (d is clipped to [-d_max, d_max]), got "
                           "{d_max!r}").format(d_max=d_max))


def renorm_corrections(batch_mean, batch_std, running_mean, running_std, r_max=3.0, d_max=5.0):
    """The corrections r and d of Batch Renormalization, clipped.

        r = clip(batch_std / running_std, 1 / r_max, r_max)
        d = clip((batch_mean - running_mean) / running_std, -d_max, d_max)

    Args:
        batch_mean, batch_std:     (D,) mu_B and sigma_B = sqrt(biased batch variance + eps)
        running_mean, running_std: (D,) mu and sigma, the running estimates (sigma > 0)
        r_max: >= 1; d_max: >= 0

    Returns:
        (r, d), two (D,) arrays
    """
    _check_limits(r_max, d_max)
    batch_mean, batch_std = np.asarray(batch_mean), np.asarray(batch_std)
    running_mean, running_std = np.asarray(running_mean), np.asarray(running_std)
    if np.any(running_std <= 0):
        raise ValueError(_("running_std must be positive (it is a standard deviation)"))
    r = np.clip(batch_std / running_std, 1.0 / r_max, r_max)
    d = np.clip((batch_mean - running_mean) / running_std, -d_max, d_max)
    return r, d


@dataclass
class BatchRenormCache:
    """What the forward pass keeps for the backward pass (x is (N, D)).

    Attributes:
        x_bn:   (N, D) (x - mu_B) / sigma_B, the batch-normalized input
        x_hat:  (N, D) x_bn * r + d, the renormalized input
        mean:   (D,) mu_B;  std: (D,) sigma_B = sqrt(var_B + eps)
        r, d:   (D,) the corrections used (constants for the backward pass)
        gamma:  (D,) the scale
    """

    x_bn: np.ndarray
    x_hat: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    r: np.ndarray
    d: np.ndarray
    gamma: np.ndarray


def renormalize(x, gamma, beta, r, d, eps=1e-5):
    """y = gamma * ((x - mu_B) / sigma_B * r + d) + beta for *given* r and d (no clipping).

    The function whose gradient ``batch_renorm_backward`` computes: r and d held fixed.
    r = 1, d = 0 is batch normalization.

    Args:
        x: (N, D), N >= 2; gamma, beta, r, d: (D,); eps > 0

    Returns:
        out (N, D), cache (BatchRenormCache)
    """
    x = _as_batch(x)
    eps = _check_eps(eps)
    dim = x.shape[1]
    gamma = _per_feature(gamma, dim, "gamma", x.dtype)
    beta = _per_feature(beta, dim, "beta", x.dtype)
    r = _per_feature(r, dim, "r", x.dtype)
    d = _per_feature(d, dim, "d", x.dtype)
    mean = x.mean(axis=0)
    centred = x - mean  # two passes: mean first, then the squared deviations
    std = np.sqrt(np.mean(centred * centred, axis=0) + eps)  # sigma_B, eps inside
    x_bn = centred / std
    x_hat = x_bn * r + d
    out = gamma * x_hat + beta
    return out, BatchRenormCache(x_bn=x_bn, x_hat=x_hat, mean=mean, std=std, r=r, d=d, gamma=gamma)


def batch_renorm_forward(x, gamma, beta, running_mean, running_std, r_max=3.0, d_max=5.0, eps=1e-5):
    """Batch Renormalization in training mode (Ioffe 2017, Algorithm 1).

    Args:
        x:            (N, D) mini-batch, N >= 2
        gamma, beta:  (D,) scale and shift
        running_mean: (D,) mu, the running mean
        running_std:  (D,) sigma, the running standard deviation (> 0; it includes eps)
        r_max, d_max: clipping limits (r_max = 1, d_max = 0: plain batch normalization)
        eps:          added to the batch variance before the square root

    Returns:
        out (N, D), cache (BatchRenormCache; its r and d are the clipped corrections used)
    """
    x = _as_batch(x)
    eps = _check_eps(eps)
    _check_limits(r_max, d_max)
    dim = x.shape[1]
    running_mean = _per_feature(running_mean, dim, "running_mean", x.dtype)
    running_std = _per_feature(running_std, dim, "running_std", x.dtype)
    mean = x.mean(axis=0)
    std = np.sqrt(np.mean((x - mean) ** 2, axis=0) + eps)
    r, d = renorm_corrections(mean, std, running_mean, running_std, r_max, d_max)
    return renormalize(x, gamma, beta, r, d, eps)


def batch_renorm_backward(dout, cache: BatchRenormCache):
    """Backward pass of ``batch_renorm_forward`` with r and d treated as constants.

    With g = dout * gamma * r (the upstream gradient reaching x_bn), the BN closed form:

        dx     = (g - mean(g) - x_bn * mean(g * x_bn)) / sigma_B      (means over the batch)
        dgamma = sum(dout * x_hat),   dbeta = sum(dout)

    (Ioffe 2017, Algorithm 1's backward: dL/dsigma_B and dL/dmu_B each carry the factor r.)

    Args:
        dout:  (N, D) upstream gradient
        cache: from ``batch_renorm_forward`` or ``renormalize``

    Returns:
        dx (N, D), dgamma (D,), dbeta (D,)
    """
    dout = np.asarray(dout)
    if dout.shape != cache.x_bn.shape:
        raise ValueError(_("dout must have the shape of the forward output {value}, got {dout_shape}").format(value=cache.x_bn.shape, dout_shape=dout.shape))
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * cache.x_hat, axis=0)
    g = dout * (cache.gamma * cache.r)  # (N, D) gradient with respect to x_bn
    dx = (g - g.mean(axis=0) - cache.x_bn * np.mean(g * cache.x_bn, axis=0)) / cache.std
    return dx, dgamma, dbeta


def update_renorm_statistics(running_mean, running_std, batch_mean, batch_std, momentum=0.01):
    """One step of the running statistics: mu += alpha (mu_B - mu), sigma += alpha (sigma_B - sigma).

    torch's convention: ``momentum`` (alpha) is the weight of the new batch. The paper keeps the
    running *standard deviation*, so this averages sigma_B (with eps inside), not the variance.

    Returns:
        (new_running_mean, new_running_std): new (D,) arrays
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(_("momentum must be a number in [0, 1], got {momentum!r}").format(momentum=momentum))
    running_mean, running_std = np.asarray(running_mean), np.asarray(running_std)
    new_mean = running_mean + momentum * (np.asarray(batch_mean) - running_mean)
    new_std = running_std + momentum * (np.asarray(batch_std) - running_std)
    return new_mean, new_std


def batch_renorm_inference(x, gamma, beta, running_mean, running_std):
    """Inference: y = gamma * (x - mu) / sigma + beta, with the running statistics.

    Args:
        x: (N, D), any N >= 1; gamma, beta, running_mean, running_std: (D,)

    Returns:
        (N, D)
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim != 2:
        raise ValueError(_("x must have 2 dimensions (N, D), got shape {x_shape}").format(x_shape=x.shape))
    dim = x.shape[1]
    gamma = _per_feature(gamma, dim, "gamma", x.dtype)
    beta = _per_feature(beta, dim, "beta", x.dtype)
    running_mean = _per_feature(running_mean, dim, "running_mean", x.dtype)
    running_std = _per_feature(running_std, dim, "running_std", x.dtype)
    if np.any(running_std <= 0):
        raise ValueError(_("running_std must be positive (it is a standard deviation)"))
    return gamma * (x - running_mean) / running_std + beta
