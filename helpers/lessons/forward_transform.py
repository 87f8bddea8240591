"""Plain computations behind notebook 02 (the forward transform) and its panels.

- ``SkewedPopulation``: a shifted log-normal feature, the kind of lopsided, off-centre input a
  hidden unit often sees; exact mean, standard deviation and density, and seeded samples.
- ``batch_estimate_errors``: how far a mini-batch's mean and standard deviation land from the
  population's, as a function of the batch size (the noise BN lives with).
- ``sigmoid`` / ``sigmoid_regime``: where a sigmoid's inputs sit: how linear the sigmoid is
  over them, its mean slope, the fraction of saturated inputs.
- ``track_layer_inputs``: internal covariate shift made visible: train the paper's Figure 1
  MLP for a few hundred steps and record the distribution of one hidden layer's inputs.
- ``fixed_image_changes``: what BN does *not* fix by construction: how far each image moves
  within its unit's distribution, and how much the distribution's shape changes.

Only ``track_layer_inputs`` uses torch (imported inside it); the rest is numpy.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LayerInputHistory",
    "SkewedPopulation",
    "batch_estimate_errors",
    "fixed_image_changes",
    "sigmoid",
    "sigmoid_regime",
    "track_layer_inputs",
]


# ----------------------------------------------------------------------------------------
# A skewed, shifted input population
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkewedPopulation:
    """x = shift + scale * exp(sigma * z), z ~ N(0, 1): a log-normal moved away from zero.

    All values exceed ``shift``; the long tail is on the right. The defaults give a feature
    with mean ~4.0 and standard deviation ~0.99, far from the (0, 1) that BN produces.
    """

    shift: float = 2.5
    scale: float = 1.25
    sigma: float = 0.6

    def __post_init__(self):
        if self.scale <= 0 or self.sigma <= 0:
            raise ValueError(f"scale and sigma must be positive, got scale={self.scale}, sigma={self.sigma}")

    @property
    def mean(self) -> float:
        """E[x] = shift + scale * exp(sigma^2 / 2)."""
        return self.shift + self.scale * np.exp(self.sigma**2 / 2)

    @property
    def std(self) -> float:
        """sqrt(Var[x]) with Var[x] = scale^2 * (exp(sigma^2) - 1) * exp(sigma^2)."""
        s2 = self.sigma**2
        return float(self.scale * np.sqrt((np.exp(s2) - 1) * np.exp(s2)))

    def sample(self, size, seed=0) -> np.ndarray:
        """``size`` values (an int or a shape tuple), float64, from a generator seeded by ``seed``."""
        rng = np.random.default_rng(seed)
        return self.shift + self.scale * np.exp(self.sigma * rng.standard_normal(size))

    def pdf(self, x) -> np.ndarray:
        """The density at x (any shape; 0 where x <= shift)."""
        x = np.asarray(x, dtype=np.float64)
        u = (x - self.shift) / self.scale
        density = np.zeros_like(x)
        inside = u > 0
        log_u = np.log(u[inside])
        density[inside] = np.exp(-(log_u**2) / (2 * self.sigma**2)) / (
            u[inside] * self.sigma * np.sqrt(2 * np.pi) * self.scale
        )
        return density


def batch_estimate_errors(population: SkewedPopulation, batch_sizes, batches: int = 400, seed: int = 0) -> dict:
    """How far mini-batch estimates fall from the population's mean and standard deviation.

    For each batch size m, draws ``batches`` batches of m values and computes each batch's mean
    and biased standard deviation (the ones BN normalizes with).

    Returns a dict of arrays, one value per batch size (shape (len(batch_sizes),)):
        batch_sizes:     the m's
        mean_rmse:       root-mean-square error of the batch mean, in units of the population std
        std_rmse:        the same for the batch standard deviation
        std_average:     average batch std / population std (below 1: the biased estimate is low)
        var_average:     average biased batch variance / population variance
        expected_std_average_squared: (m - 1) / m, what var_average is in expectation (for any
                         population with a finite variance)
    """
    batch_sizes = np.asarray(batch_sizes, dtype=int)
    if batch_sizes.ndim != 1 or np.any(batch_sizes < 1):
        raise ValueError(f"batch_sizes must be a 1-D list of positive integers, got {batch_sizes!r}")
    mean_rmse, std_rmse, std_average, var_average = [], [], [], []
    for index, m in enumerate(batch_sizes):
        values = population.sample((batches, int(m)), seed=seed + index)  # (batches, m)
        means = values.mean(axis=1)
        stds = values.std(axis=1)  # ddof=0: the batch's own spread
        mean_rmse.append(np.sqrt(np.mean((means - population.mean) ** 2)) / population.std)
        std_rmse.append(np.sqrt(np.mean((stds - population.std) ** 2)) / population.std)
        std_average.append(stds.mean() / population.std)
        var_average.append(np.mean(stds**2) / population.std**2)
    return dict(
        batch_sizes=batch_sizes,
        mean_rmse=np.array(mean_rmse),
        std_rmse=np.array(std_rmse),
        std_average=np.array(std_average),
        var_average=np.array(var_average),
        expected_std_average_squared=(batch_sizes - 1) / batch_sizes,
    )


# ----------------------------------------------------------------------------------------
# The sigmoid's regimes
# ----------------------------------------------------------------------------------------


def sigmoid(z) -> np.ndarray:
    """1 / (1 + exp(-z)), computed without overflow for large |z|."""
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def sigmoid_regime(z) -> dict:
    """Where the inputs ``z`` (any shape, at least two distinct values) sit on the sigmoid.

    Returns a dict of floats:
        linear_r2:          fraction of the variance of sigmoid(z) explained by the best straight
                            line in z (1 = the sigmoid acts as a linear map on these inputs)
        tangent_r2:         the same for the tangent line at mean(z) (can be negative)
        mean_slope:         average sigmoid'(z) (at most 0.25, reached at z = 0)
        saturated_fraction: fraction of inputs where sigmoid'(z) < 0.01 (|z| > ~4.6)
    """
    z = np.asarray(z, dtype=np.float64).ravel()
    if z.size < 2 or np.ptp(z) == 0:
        raise ValueError("sigmoid_regime needs at least two distinct input values")
    s = sigmoid(z)
    slope = s * (1 - s)
    var_s = np.var(s)
    if var_s == 0:  # every input so deep in saturation that the outputs are identical
        linear_r2 = tangent_r2 = 1.0
    else:
        linear_r2 = float(np.corrcoef(z, s)[0, 1] ** 2)
        centre = z.mean()
        s_centre = sigmoid(centre)
        tangent = s_centre + s_centre * (1 - s_centre) * (z - centre)
        tangent_r2 = float(1 - np.var(s - tangent) / var_s)
    return dict(
        linear_r2=linear_r2,
        tangent_r2=tangent_r2,
        mean_slope=float(slope.mean()),
        saturated_fraction=float(np.mean(slope < 0.01)),
    )


# ----------------------------------------------------------------------------------------
# Internal covariate shift, made visible
# ----------------------------------------------------------------------------------------


@dataclass
class LayerInputHistory:
    """What ``track_layer_inputs`` recorded, on a fixed probe batch of P examples.

    Attributes:
        steps:         (R,) the SGD step of each record (0 = before training)
        quantiles:     (Q,) the percentiles recorded, e.g. (15, 50, 85)
        linear_pct:    (R, Q) percentiles of the tracked unit's W u (+ b): the linear layer's output
        sigmoid_pct:   (R, Q) percentiles of the tracked unit's input to its sigmoid
                       (equal to linear_pct without BN; BN(W u) with BN)
        sigmoid_mean:  (R, U) mean over the probe of every unit's sigmoid input in the layer
        sigmoid_std:   (R, U) their standard deviations
        beta, gamma:   (R, U) the layer's BN shift and scale at each record (NaN without BN).
                       With BN the probe is normalized with its own statistics, so sigmoid_mean
                       equals beta and sigmoid_std is |gamma| * sqrt(var / (var + eps)): by
                       construction, whatever the layers below do
        unit_inputs:   (R, P) the tracked unit's sigmoid input for every probe example
        first_inputs, last_inputs: (P, U) every unit's sigmoid input for every probe example,
                       at the first and at the last record
        batchnorm:     whether the network had BN
        layer, unit:   which hidden layer (0-based) and which unit's percentiles
        seconds:       wall time of the run
    """

    steps: np.ndarray
    quantiles: np.ndarray
    linear_pct: np.ndarray
    sigmoid_pct: np.ndarray
    sigmoid_mean: np.ndarray
    sigmoid_std: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    unit_inputs: np.ndarray
    first_inputs: np.ndarray
    last_inputs: np.ndarray
    batchnorm: bool
    layer: int
    unit: int
    seconds: float


@contextmanager
def _torch_threads(count):
    """Run a block with torch using ``count`` threads; restore the previous setting afterwards.
    (A tiny MLP is as fast on one thread, and one thread does not stall on a busy machine.)"""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _layer_inputs(model, x, layer):
    """(W u (+ b), sigmoid input) of hidden layer ``layer`` for the batch x, each (P, hidden).

    With BN, the batch statistics are the probe batch's own (training-mode normalization),
    computed without touching the model's running statistics."""
    import torch
    import torch.nn.functional as F

    h = x
    for index, (linear, norm) in enumerate(zip(model.linears, model.norms)):
        z = linear(h)
        if model.batchnorm:
            s = F.batch_norm(z, None, None, norm.weight, norm.bias, training=True, eps=norm.eps)
        else:
            s = z
        if index == layer:
            return z, s
        h = torch.sigmoid(s)
    raise ValueError(f"layer must be between 0 and {len(model.linears) - 1}, got {layer}")


def track_layer_inputs(x_train, y_train, x_probe, *, batchnorm: bool, steps: int = 500,
                       lr: float = 0.5, batch_size: int = 60, layer: int = 2, unit: int = 0,
                       record_every: int = 10, quantiles=(15, 50, 85), seed: int = 0,
                       threads: int = 1) -> LayerInputHistory:
    """Train the paper's Figure 1 MLP (784 -> 3 x 100 sigmoid -> 10, BN before each sigmoid
    if ``batchnorm``) with plain SGD, and watch the inputs of one hidden layer change.

    Args:
        x_train, y_train: tensors (n, 784) float32 and (n,) int64
        x_probe:          (P, 784) fixed examples on which the layer's inputs are measured
        steps, lr, batch_size: SGD settings (batches drawn with replacement, seeded)
        layer, unit:      the hidden layer (0-based) and the unit whose percentiles are kept
        record_every:     measure after every this many steps (and before the first)
        seed:             seeds the initial weights and the batch order
        threads:          torch threads during the run (restored afterwards)

    Returns:
        LayerInputHistory. torch's global random state and thread count are left unchanged.
    """
    import time

    import torch
    import torch.nn.functional as F

    from helpers.models import Figure1MLP

    if steps < 0 or record_every < 1:
        raise ValueError("steps must be >= 0 and record_every >= 1")
    q = torch.tensor(quantiles, dtype=torch.float32) / 100
    model = Figure1MLP(batchnorm=batchnorm, seed=seed)
    if not 0 <= layer < len(model.linears):
        raise ValueError(f"layer must be between 0 and {len(model.linears) - 1}, got {layer}")
    parameters = list(model.parameters())
    generator = torch.Generator().manual_seed(seed)
    records = dict(steps=[], linear=[], sig=[], mean=[], std=[], beta=[], gamma=[], unit=[])
    whole_layer = {}  # "first" and "last": (P, U) inputs of every unit
    norm = model.norms[layer]
    units = model.linears[layer].out_features
    nan = np.full(units, np.nan)

    def record(step):
        with torch.no_grad():
            z, s = _layer_inputs(model, x_probe, layer)
        records["steps"].append(step)
        records["linear"].append(torch.quantile(z[:, unit], q).numpy())
        records["sig"].append(torch.quantile(s[:, unit], q).numpy())
        records["mean"].append(s.mean(dim=0).numpy())
        records["std"].append(s.std(dim=0, correction=0).numpy())
        records["beta"].append(norm.bias.detach().numpy().copy() if batchnorm else nan)
        records["gamma"].append(norm.weight.detach().numpy().copy() if batchnorm else nan)
        records["unit"].append(s[:, unit].numpy().copy())
        whole_layer.setdefault("first", s.numpy().copy())
        whole_layer["last"] = s.numpy().copy()

    start = time.perf_counter()
    with _torch_threads(threads):
        record(0)
        for step in range(1, steps + 1):
            batch = torch.randint(0, len(x_train), (batch_size,), generator=generator)
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            gradients = torch.autograd.grad(loss, parameters)
            with torch.no_grad():  # plain SGD: p <- p - lr * dL/dp
                for parameter, gradient in zip(parameters, gradients):
                    parameter -= lr * gradient
            if step % record_every == 0 or step == steps:
                record(step)
    return LayerInputHistory(
        steps=np.array(records["steps"]),
        quantiles=np.array(quantiles),
        linear_pct=np.array(records["linear"], dtype=np.float64),
        sigmoid_pct=np.array(records["sig"], dtype=np.float64),
        sigmoid_mean=np.array(records["mean"], dtype=np.float64),
        sigmoid_std=np.array(records["std"], dtype=np.float64),
        beta=np.array(records["beta"], dtype=np.float64),
        gamma=np.array(records["gamma"], dtype=np.float64),
        unit_inputs=np.array(records["unit"], dtype=np.float64),
        first_inputs=whole_layer["first"].astype(np.float64),
        last_inputs=whole_layer["last"].astype(np.float64),
        batchnorm=bool(batchnorm),
        layer=layer,
        unit=unit,
        seconds=time.perf_counter() - start,
    )


def fixed_image_changes(first, last) -> dict:
    """What normalizing with the batch's statistics does *not* hold still.

    ``first`` and ``last`` are (P, U): the inputs of U units for the same P examples, before and
    after training (e.g. ``LayerInputHistory.first_inputs`` and ``last_inputs``). Each unit's
    values are standardized over the P examples at each time, which removes exactly what BN
    fixes by construction (the batch mean and spread), and then compared.

    Returns a dict of floats:
        image_move:   mean over examples and units of |z_last - z_first|, z the standardized
                      value: how far an example moves within its unit's distribution, in units
                      of the spread (0 if every example keeps its place)
        correlation:  median over units of the correlation, over examples, between first and
                      last values (1 if the order and spacing of the examples are kept)
        shape_change: median over units of the 1-Wasserstein distance between the standardized
                      distributions (0 if the distribution keeps its shape)
    """
    first, last = (np.asarray(a, dtype=np.float64) for a in (first, last))
    if first.ndim != 2 or first.shape != last.shape or first.shape[0] < 2:
        raise ValueError(f"first and last must both be (P, U) with P >= 2, got {first.shape} and {last.shape}")

    def standardized(a):
        return (a - a.mean(axis=0)) / a.std(axis=0)

    z_first, z_last = standardized(first), standardized(last)
    correlations = [np.corrcoef(z_first[:, j], z_last[:, j])[0, 1] for j in range(first.shape[1])]
    return dict(
        image_move=float(np.abs(z_last - z_first).mean()),
        correlation=float(np.median(correlations)),
        shape_change=float(np.median(np.abs(np.sort(z_last, axis=0) - np.sort(z_first, axis=0)).mean(axis=0))),
    )
