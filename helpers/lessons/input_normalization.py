"""Why we normalize inputs: the plain computations behind notebook 01 (numpy only).

- Toy data: ``car_data`` (car age in years and distance driven in km, price as the target:
  two features on wildly different scales, and correlated), ``two_feature_problem`` (a
  least-squares problem whose feature-scale ratio and correlation are set exactly).
- Rescaling, one statistic per column (feature), computed on ``reference`` (the training
  set) and applied to ``x``: ``min_max_scale`` ((x - min) / (max - min), range [0, 1]),
  ``mean_normalize`` ((x - mean) / (max - min), range inside [-1, 1]), ``zscore``
  ((x - mean) / std, biased std, ddof=0, as BN and scikit-learn's StandardScaler),
  ``whiten`` (PCA or ZCA: zero mean, identity covariance).
- Gradient descent on least squares, L(w) = ||X w - y||^2 / (2 n): ``LeastSquares`` (loss,
  gradient, Hessian H = X^T X / n, minimizer), ``condition_number``,
  ``largest_stable_learning_rate`` (2 / lambda_max), ``gradient_descent`` (the loop),
  ``steps_to_tolerance`` (the exact step count from H's eigenvalues, for any number of
  steps) and ``steps_estimate`` (about kappa / 2 * ln(1 / tol) at learning rate 1 / lambda_max).

Tolerances are relative: gradient descent has converged when the excess loss L(w) - L(w*)
is at most ``tol`` times the excess loss at the starting point. The excess loss is the same
number whichever way the features were rescaled (the predictions are the same), so step
counts on raw and on standardized features can be compared directly.

Bad input raises ValueError naming what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from helpers.i18n import N_, _

__all__ = [
    "CarData",
    "GDResult",
    "LeastSquares",
    "add_intercept",
    "car_data",
    "condition_number",
    "gradient_descent",
    "hessian_eigenvalues",
    "largest_stable_learning_rate",
    "mean_normalize",
    "min_max_scale",
    "steps_estimate",
    "steps_to_tolerance",
    "two_feature_problem",
    "whiten",
    "zscore",
]

#: Gradient descent stops when the excess loss has fallen to this fraction of its start.
TOL = 1e-6


# ----------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------


def _as_matrix(x, name: str = "x") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(_(
            "{name} must be 2-D, (samples, features), got shape {shape}; "
            "for a single feature use x.reshape(-1, 1)"
        ).format(name=name, shape=x.shape))
    if x.shape[0] < 2:
        raise ValueError(_("{name} needs at least 2 rows (samples) to have a spread, got {rows}").format(
            name=name, rows=x.shape[0]))
    return x


def _reference_for(x: np.ndarray, reference) -> np.ndarray:
    if reference is None:
        return x
    reference = _as_matrix(reference, "reference")
    if reference.shape[1] != x.shape[1]:
        raise ValueError(_(
            "reference must have the same number of columns (features) as x: "
            "{columns} != {columns2}"
        ).format(columns=reference.shape[1], columns2=x.shape[1]))
    return reference


def _nonzero(spread: np.ndarray, what: str) -> np.ndarray:
    if np.any(spread == 0):
        constant = np.flatnonzero(spread == 0).tolist()
        raise ValueError(_("feature(s) {constant} are constant ({what} = 0): they cannot be rescaled").format(
            constant=constant, what=what))
    return spread


# ----------------------------------------------------------------------------------------
# Toy data
# ----------------------------------------------------------------------------------------


@dataclass
class CarData:
    """Used cars: x[:, 0] is the age in years (0-30), x[:, 1] the distance driven in km
    (0-300,000); y is the price in euros."""

    x: np.ndarray
    y: np.ndarray
    names: tuple = (N_("age (years)"), N_("distance (km)"))


def car_data(n: int = 200, seed: int = 0) -> CarData:
    """A seeded used-car table: older cars have driven further (each car 2,000-10,000 km a
    year, so the correlation is about 0.8), and the price falls with both. Ages lie in
    [0, 30] years, distances in [0, 300,000] km."""
    if n < 2:
        raise ValueError(_("n must be at least 2, got {n}").format(n=n))
    rng = np.random.default_rng(seed)
    age = rng.uniform(0.0, 30.0, size=n)
    distance = age * rng.uniform(2_000.0, 10_000.0, size=n)
    price = 32_000.0 - 450.0 * age - 0.04 * distance + rng.normal(0.0, 1_500.0, size=n)
    return CarData(x=np.column_stack([age, distance]), y=price,
                   names=tuple(_(name) for name in CarData.names))  # as shown: in the current language


def _exactly_white(n: int, d: int, rng) -> np.ndarray:
    """n samples of d features whose sample mean is exactly 0 and covariance exactly I."""
    z = rng.normal(size=(n, d))
    z -= z.mean(axis=0)
    values, vectors = np.linalg.eigh(z.T @ z / n)
    return z @ vectors @ np.diag(values**-0.5) @ vectors.T


def two_feature_problem(scale_ratio: float = 1.0, correlation: float = 0.0, n: int = 200,
                        weights=(1.5, 1.0), noise: float = 0.3, seed: int = 0):
    """A least-squares problem with two centered features whose sample statistics are exact.

    Feature 0 has standard deviation 1, feature 1 has standard deviation ``scale_ratio``,
    their correlation is ``correlation``. The targets are ``y = z @ weights + noise`` where z
    are the standardized features and the noise is orthogonal to them, so the minimizer on
    the standardized features is exactly ``weights`` (on the raw features: weights / std).

    Returns (x, y): x of shape (n, 2), y of shape (n,).
    """
    if not scale_ratio > 0:
        raise ValueError(_("scale_ratio must be positive, got {value}").format(value=scale_ratio))
    if not -1 < correlation < 1:
        raise ValueError(_("correlation must lie strictly between -1 and 1, got {value}").format(value=correlation))
    rng = np.random.default_rng(seed)
    white = _exactly_white(n, 3, rng)
    mixing = np.linalg.cholesky(np.array([[1.0, correlation], [correlation, 1.0]]))
    z = white[:, :2] @ mixing.T  # covariance exactly [[1, r], [r, 1]]
    y = z @ np.asarray(weights, dtype=np.float64) + noise * white[:, 2]
    return z * np.array([1.0, scale_ratio]), y


def add_intercept(x) -> np.ndarray:
    """x with a first column of ones, so that w[0] is the intercept."""
    x = _as_matrix(x)
    return np.column_stack([np.ones(len(x)), x])


# ----------------------------------------------------------------------------------------
# Rescaling: statistics per column, from the reference (training) set
# ----------------------------------------------------------------------------------------


def min_max_scale(x, reference=None) -> np.ndarray:
    """(x - min) / (max - min) per column, min and max taken from ``reference`` (default x).

    On the reference itself every column spans exactly [0, 1]."""
    x = _as_matrix(x)
    reference = _reference_for(x, reference)
    low, high = reference.min(axis=0), reference.max(axis=0)
    return (x - low) / _nonzero(high - low, "max - min")


def mean_normalize(x, reference=None) -> np.ndarray:
    """(x - mean) / (max - min) per column: *mean normalization*, not min-max scaling.

    On the reference each column has mean 0 and spans an interval of width 1 somewhere
    inside [-1, 1] (it contains 0), so about half the values are negative."""
    x = _as_matrix(x)
    reference = _reference_for(x, reference)
    spread = reference.max(axis=0) - reference.min(axis=0)
    return (x - reference.mean(axis=0)) / _nonzero(spread, "max - min")


def zscore(x, reference=None, ddof: int = 0) -> np.ndarray:
    """(x - mean) / std per column, mean and std taken from ``reference`` (default x).

    ``ddof=0`` (divide by n) by default, as BN's normalization and scikit-learn's
    StandardScaler do: on the reference every column then has mean 0 and standard
    deviation exactly 1 (computed the same way)."""
    x = _as_matrix(x)
    reference = _reference_for(x, reference)
    mean = reference.mean(axis=0)
    std = np.sqrt(((reference - mean) ** 2).sum(axis=0) / (len(reference) - ddof))
    return (x - mean) / _nonzero(std, "std")


def whiten(x, reference=None, method: str = "zca") -> np.ndarray:
    """Zero mean and identity covariance (ddof=0), statistics from ``reference``.

    method "pca": rotate onto the covariance's eigenvectors, then divide by sqrt(eigenvalue);
    method "zca": the same, rotated back (x Sigma^(-1/2)): the white data closest to x.
    """
    if method not in ("pca", "zca"):
        raise ValueError(_("method must be 'pca' or 'zca', got {value!r}").format(value=method))
    x = _as_matrix(x)
    reference = _reference_for(x, reference)
    mean = reference.mean(axis=0)
    centered = reference - mean
    values, vectors = np.linalg.eigh(centered.T @ centered / len(reference))
    if values.min() <= values.max() * 1e-12:
        raise ValueError(_("the features are linearly dependent (a covariance eigenvalue is 0): "
                           "they cannot be whitened"))
    transform = vectors / np.sqrt(values)  # columns: eigenvectors / sqrt(eigenvalue)
    if method == "zca":
        transform = transform @ vectors.T
    return (x - mean) @ transform


# ----------------------------------------------------------------------------------------
# Least squares and gradient descent
# ----------------------------------------------------------------------------------------


class LeastSquares:
    """L(w) = ||x w - y||^2 / (2 n), its gradient x^T (x w - y) / n and Hessian x^T x / n."""

    def __init__(self, x, y):
        self.x = _as_matrix(x)
        self.y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(self.y) != len(self.x):
            raise ValueError(_("x has {rows} rows but y has {values} values").format(
                rows=len(self.x), values=len(self.y)))
        n = len(self.x)
        self.hessian = self.x.T @ self.x / n
        self.xty = self.x.T @ self.y / n
        self.minimizer = np.linalg.lstsq(self.x, self.y, rcond=None)[0]
        self.min_loss = float(np.sum((self.x @ self.minimizer - self.y) ** 2) / (2 * n))

    def loss(self, w) -> float:
        """The loss at w, straight from the data."""
        return float(np.sum((self.x @ np.asarray(w, dtype=np.float64) - self.y) ** 2) / (2 * len(self.x)))

    def gradient(self, w) -> np.ndarray:
        return self.hessian @ np.asarray(w, dtype=np.float64) - self.xty

    def excess_loss(self, w) -> np.ndarray:
        """L(w) - L(w*) = (w - w*)^T H (w - w*) / 2, for one w (d,) or many (..., d) at once
        (e.g. a grid for contour plots)."""
        e = np.asarray(w, dtype=np.float64) - self.minimizer
        return 0.5 * np.einsum("...i,ij,...j->...", e, self.hessian, e)


def hessian_eigenvalues(hessian) -> np.ndarray:
    """Eigenvalues of a symmetric matrix, ascending."""
    hessian = np.asarray(hessian, dtype=np.float64)
    if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1]:
        raise ValueError(_("the Hessian must be a square matrix, got shape {shape}").format(shape=hessian.shape))
    return np.linalg.eigvalsh(hessian)


def condition_number(hessian) -> float:
    """lambda_max / lambda_min of the Hessian (inf if it is singular)."""
    values = hessian_eigenvalues(hessian)
    return float(values[-1] / values[0]) if values[0] > 0 else math.inf


def largest_stable_learning_rate(hessian) -> float:
    """2 / lambda_max: above it, gradient descent on the quadratic diverges."""
    return float(2.0 / hessian_eigenvalues(hessian)[-1])


@dataclass
class GDResult:
    """What ``gradient_descent`` did.

    path: (steps + 1, d), the start and every iterate; excess: the excess loss at each;
    converged: excess <= tol * excess[0] was reached; diverged: the excess loss grew past
    1e8 times its start (or overflowed); steps: the number of updates made.
    """

    path: np.ndarray
    excess: np.ndarray
    converged: bool
    diverged: bool

    @property
    def steps(self) -> int:
        return len(self.path) - 1


def gradient_descent(problem: LeastSquares, w0, learning_rate: float, max_steps: int = 10_000,
                     tol: float = TOL) -> GDResult:
    """Plain gradient descent, w <- w - learning_rate * grad L(w), from w0.

    Stops as soon as the excess loss is at most tol times the starting one (converged),
    when it has grown past 1e8 times the start (diverged), or after max_steps updates.
    """
    if not learning_rate > 0:
        raise ValueError(_("learning_rate must be positive, got {value}").format(value=learning_rate))
    w = np.array(w0, dtype=np.float64).reshape(-1)
    if w.shape != problem.minimizer.shape:
        raise ValueError(_("w0 must have {size} values, got {size2}").format(size=problem.minimizer.size, size2=w.size))
    path, excess = [w.copy()], [float(problem.excess_loss(w))]
    target = tol * excess[0]
    converged = excess[0] <= target
    diverged = False
    for _step in range(max_steps):
        if converged:
            break
        w = w - learning_rate * problem.gradient(w)
        e = float(problem.excess_loss(w))
        path.append(w.copy())
        excess.append(e)
        if e <= target:
            converged = True
        elif not np.isfinite(e) or e > 1e8 * excess[0]:
            diverged = True
            break
    return GDResult(np.array(path), np.array(excess), converged, diverged)


def _modes(hessian, offset):
    values, vectors = np.linalg.eigh(np.asarray(hessian, dtype=np.float64))
    values = np.clip(values, 0.0, None)
    coefficients = vectors.T @ np.asarray(offset, dtype=np.float64)
    return values, 0.5 * values * coefficients**2  # each mode's share of the excess loss


def excess_after(hessian, offset, learning_rate: float, steps) -> np.ndarray:
    """The excess loss after ``steps`` updates (an int or an array of ints) from an offset
    w0 - w*, without running them: each eigen-direction of H shrinks by (1 - lr lambda)
    per step, so its share of the excess loss shrinks by (1 - lr lambda)^2."""
    values, shares = _modes(hessian, offset)
    factors = (1.0 - learning_rate * values) ** 2
    steps = np.asarray(steps, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        return np.sum(shares * np.power(factors, steps[..., None]), axis=-1)


def steps_to_tolerance(hessian, offset, learning_rate: float, tol: float = TOL):
    """The exact number of gradient-descent steps until the excess loss is at most tol times
    its start, from the offset w0 - w* (same stopping rule as ``gradient_descent``).

    Works for any number of steps (billions included) because it does not run them.
    Returns None if gradient descent never gets there: a direction it has to fix shrinks by
    a factor |1 - lr lambda| >= 1 per step (learning rate >= 2 / lambda for that direction).
    """
    if not learning_rate > 0:
        raise ValueError(_("learning_rate must be positive, got {value}").format(value=learning_rate))
    values, shares = _modes(hessian, offset)
    start = shares.sum()
    target = tol * start
    if start <= target:
        return 0
    factors = (1.0 - learning_rate * values) ** 2
    if np.any((factors > 1.0) & (shares > 0)):
        return None  # a direction that grows every step: divergence
    if shares[factors == 1.0].sum() > target:
        return None  # a direction that never shrinks (lr exactly 2 / lambda): oscillation

    def done(k):
        return excess_after(hessian, offset, learning_rate, k) <= target

    high = 1
    while not done(high):
        high *= 2
    low = high // 2  # not done at low (or low == 0)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if done(middle) else (middle, high)
    return high


def steps_estimate(kappa: float, tol: float = TOL) -> float:
    """About how many steps gradient descent needs at learning rate 1 / lambda_max when the
    slowest direction carries the excess loss: (1 - 1/kappa)^(2k) = tol, i.e. roughly
    kappa / 2 * ln(1 / tol): proportional to the condition number."""
    if kappa <= 1 + 1e-9:
        return 1.0
    return max(1.0, math.log(tol) / (2.0 * math.log1p(-1.0 / kappa)))
