"""Exercise checkers of notebook 02 (the forward transform).

- ``check_batchnorm_forward(fn)``: the reader's ``fn(x, gamma, beta, eps) -> out``, the training
  forward pass of BN for x of shape (N, D).
- ``check_identity_parameters(fn)``: the reader's ``fn(x, eps) -> (gamma, beta)``, the gamma
  and beta that make BN give back its input unchanged.

Both run the reader's function on hidden cases, compare with ``helpers.bn``, and when the answer
is wrong try the usual mistakes (statistics over the wrong axis, unbiased variance, eps missing
or outside the square root, gamma and beta swapped, ...) to say which one it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from helpers.bn import batchnorm_forward
from helpers.feedback import Feedback, NotAttempted, call_reader_function

__all__ = ["check_batchnorm_forward", "check_identity_parameters"]


# ----------------------------------------------------------------------------------------
# Hidden cases
# ----------------------------------------------------------------------------------------


@dataclass
class _Case:
    description: str
    x: np.ndarray  # (N, D)
    gamma: np.ndarray  # (D,)
    beta: np.ndarray  # (D,)
    eps: float
    kind: str = "plain"  # or "constant feature", "huge mean"
    rtol: float = 1e-9
    atol: float = 1e-9


def _forward_cases() -> list[_Case]:
    rng = np.random.default_rng(2015)
    cases = []
    # a small batch whose features differ in mean and scale (N != D, so the axes are told apart)
    x = rng.normal(loc=[3.0, -1.0, 10.0], scale=[2.0, 0.5, 4.0], size=(6, 3))
    cases.append(_Case("a batch of 6 examples with 3 features", x,
                       np.array([1.5, -0.5, 2.0]), np.array([0.3, 1.0, -2.0]), 1e-5))
    # a large eps makes every mistake about eps visible; small and large variances
    x = rng.normal(size=(40, 4)) * np.array([0.05, 0.3, 1.0, 3.0]) + np.array([1.0, -2.0, 0.0, 5.0])
    cases.append(_Case("a batch of 40 x 4 with eps = 0.5 (features of very different spreads)", x,
                       np.array([2.0, 0.7, -1.2, 1.0]), np.array([-1.0, 0.5, 0.25, 3.0]), 0.5))
    # one feature is constant across the batch: its variance is exactly 0
    x = rng.normal(size=(8, 3))
    x[:, 1] = 4.25
    cases.append(_Case("a batch of 8 x 3 whose second feature is constant (variance 0)", x,
                       np.array([1.0, 3.0, 0.5]), np.array([0.0, -1.5, 2.0]), 1e-5,
                       kind="constant feature"))
    # the mean is a million times the spread: E[x^2] - E[x]^2 cancels catastrophically here
    x = 1e6 + 1e-2 * rng.normal(size=(50, 2))
    cases.append(_Case("a batch of 50 x 2 whose mean (1e6) is huge next to its spread (1e-2)", x,
                       np.array([1.0, 2.0]), np.array([0.5, -0.5]), 1e-5,
                       kind="huge mean", rtol=1e-6, atol=1e-6))
    return cases


# ----------------------------------------------------------------------------------------
# The usual mistakes, each as a function and the explanation the reader gets
# ----------------------------------------------------------------------------------------


def _stats(x, axis=0, ddof=0):
    """Mean and variance over ``axis``, kept broadcastable against x."""
    return x.mean(axis=axis, keepdims=True), x.var(axis=axis, ddof=ddof, keepdims=True)


def _reference(x, gamma, beta, eps):
    return batchnorm_forward(x, gamma, beta, eps)[0]


def _variant(axis=0, ddof=0, denominator="sqrt(var+eps)", affine="gamma,beta", center=True):
    def forward(x, gamma, beta, eps):
        mu, var = _stats(x, axis=axis, ddof=ddof)
        xc = x - mu if center else x
        if denominator == "sqrt(var+eps)":
            x_hat = xc / np.sqrt(var + eps)
        elif denominator == "sqrt(var)":
            with np.errstate(divide="ignore", invalid="ignore"):
                x_hat = xc / np.sqrt(var)
        elif denominator == "sqrt(var)+eps":
            x_hat = xc / (np.sqrt(var) + eps)
        elif denominator == "var+eps":
            x_hat = xc / (var + eps)
        if affine == "gamma,beta":
            return gamma * x_hat + beta
        if affine == "swapped":
            return beta * x_hat + gamma
        if affine == "none":
            return x_hat
        if affine == "no beta":
            return gamma * x_hat
        if affine == "no gamma":
            return x_hat + beta
        raise ValueError(affine)

    return forward


def _global_statistics(x, gamma, beta, eps):
    x_hat = (x - x.mean()) / np.sqrt(x.var() + eps)
    return gamma * x_hat + beta


_MISTAKES: list[tuple[Callable, str]] = [
    (_variant(axis=1),
     "You computed the statistics per example (over axis 1, along each row). BN computes one "
     "mean and one variance per feature, over the batch: x.mean(axis=0) and x.var(axis=0), "
     "each of shape (D,)."),
    (_global_statistics,
     "You computed one mean and one variance over the whole array. BN uses one per feature "
     "(column): x.mean(axis=0), x.var(axis=0), each of shape (D,)."),
    (_variant(ddof=1),
     "Your variance divides by N - 1 (the unbiased estimate: np.var(..., ddof=1), or torch.var's "
     "default). In training, BN normalizes the batch by its own spread, so divide by N "
     "(np.var's default, ddof=0; the paper's Algorithm 1 has 1/m)."),
    (_variant(denominator="sqrt(var)"),
     "eps is missing: you divide by sqrt(var) instead of sqrt(var + eps). eps keeps the "
     "division finite when a feature is constant (var = 0) and is part of the transform."),
    (_variant(denominator="sqrt(var)+eps"),
     "eps is outside the square root: you divide by sqrt(var) + eps. Algorithm 1 divides by "
     "sqrt(var + eps); the two differ whenever var is not much larger than eps."),
    (_variant(denominator="var+eps"),
     "You divide by var + eps without the square root: divide by the standard deviation, "
     "sqrt(var + eps), so that x_hat has variance (close to) 1."),
    (_variant(affine="swapped"),
     "gamma and beta are swapped: the output is gamma * x_hat + beta (gamma scales, beta shifts)."),
    (_variant(affine="none"),
     "You return x_hat: the scale-and-shift step y = gamma * x_hat + beta is missing."),
    (_variant(affine="no beta"),
     "beta is missing: the output is gamma * x_hat + beta."),
    (_variant(affine="no gamma"),
     "gamma is missing: the output is gamma * x_hat + beta."),
    (_variant(center=False),
     "You did not subtract the mean: x_hat = (x - mean) / sqrt(var + eps)."),
]


def _close(a, b, case: _Case) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=case.rtol, atol=case.atol))


def _diagnose_forward(out, case: _Case) -> str:
    """The most specific explanation we can give for a wrong output on ``case``."""
    if case.kind == "constant feature" and not np.all(np.isfinite(out)):
        return ("Your output has NaN or inf for the constant feature: its variance is 0, so "
                "dividing by sqrt(var) divides by zero. Divide by sqrt(var + eps).")
    if np.all(np.isfinite(out)):
        for mistake, explanation in _MISTAKES:
            with np.errstate(all="ignore"):
                candidate = mistake(case.x, case.gamma, case.beta, case.eps)
            if np.all(np.isfinite(candidate)) and _close(out, candidate, case):
                return explanation
    if case.kind == "huge mean":
        return ("Your function is right on the other cases but not when the mean is huge next to "
                "the spread. If you compute the variance as mean(x**2) - mean(x)**2, the two "
                "terms (about 1e12) cancel and leave rounding noise (even a negative variance): "
                "compute the mean first, then the mean of the squared deviations, "
                "mean((x - mu)**2).")
    if not np.all(np.isfinite(out)):
        return "Your output contains NaN or inf values."
    # no known mistake matches: say which property of the output is off
    reference = _reference(case.x, case.gamma, case.beta, case.eps)
    hints = []
    column_means = out.mean(axis=0)
    if not np.allclose(column_means, case.beta, rtol=1e-7, atol=1e-7):
        hints.append(f"the mean of each output column should equal beta = {np.round(case.beta, 4)}, "
                     f"yours are {np.round(column_means, 4)}")
        if np.allclose(column_means, case.gamma, rtol=1e-7, atol=1e-7):
            hints.append("your column means are gamma: are gamma and beta swapped?")
    column_stds, expected_stds = out.std(axis=0), reference.std(axis=0)
    if not np.allclose(column_stds, expected_stds, rtol=1e-7, atol=1e-7):
        hints.append(f"the std of each output column should be |gamma| * sqrt(var / (var + eps)) "
                     f"= {np.round(expected_stds, 4)}, yours are {np.round(column_stds, 4)}")
    worst = float(np.max(np.abs(out - reference)))
    detail = "; ".join(hints) if hints else "the column means and stds are right but the values are not"
    return f"Your output differs from the reference by up to {worst:.3g}: {detail}."


def _as_output_array(result, expected_shape, feedback: Feedback):
    """The reader's return value as a float64 array, or None (with a message) if unusable."""
    if isinstance(result, tuple) and result:
        note = ("Your function returned a tuple; the checker uses its first element. "
                "Returning just the (N, D) output is enough here.")
        if note not in feedback.messages:
            feedback.add(note)
        result = result[0]
    if result is None:
        feedback.add("Your function returned None: did you forget the `return` statement?")
        return None
    if hasattr(result, "detach"):  # a torch tensor
        result = result.detach().cpu().numpy()
    try:
        array = np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError):
        feedback.add(f"Your function returned a {type(result).__name__}, expected a numpy array.")
        return None
    if array.shape != expected_shape:
        feedback.add(f"Your output has shape {array.shape}; it should have the input's shape "
                     f"{expected_shape} (N examples, D features). The mean and variance have "
                     f"shape (D,) and broadcast against x.")
        return None
    return array


def check_batchnorm_forward(reader_forward) -> Feedback:
    """Check ``reader_forward(x, gamma, beta, eps) -> out`` (training mode, x (N, D)).

    Runs hidden cases (a small batch, a large eps, a constant feature, a huge mean) and
    compares with ``helpers.bn.batchnorm_forward``. Returns a Feedback that names the mistake.
    """
    feedback = Feedback("the forward pass, my_batchnorm_forward")
    for case in _forward_cases():
        x = case.x.copy()
        try:
            result = call_reader_function(reader_forward, x, case.gamma.copy(), case.beta.copy(), case.eps)
        except NotAttempted:
            return Feedback(feedback.exercise, passed=False, attempted=False)
        except Exception as error:  # the reader's bug, reported instead of raised
            message = f"On {case.description}, your function raised {type(error).__name__}: {error}."
            if "broadcast" in str(error):
                message += (" Check the shapes: x is (N, D); the mean and the variance should be "
                            "(D,), one per feature, computed with axis=0.")
            feedback.add(message)
            return feedback
        if not np.array_equal(x, case.x):
            feedback.add("Your function changed its input x in place (e.g. x -= mean). Compute "
                         "new arrays instead: the caller still needs x (the backward pass does).")
            return feedback
        out = _as_output_array(result, case.x.shape, feedback)
        if out is None:
            return feedback
        if not _close(out, _reference(case.x, case.gamma, case.beta, case.eps), case):
            feedback.add(f"On {case.description}: {_diagnose_forward(out, case)}")
            return feedback
    feedback.passed = True
    feedback.add("Your forward pass matches helpers.bn.batchnorm_forward on every hidden case, "
                 "including a constant feature and a mean a million times the spread.")
    return feedback


# ----------------------------------------------------------------------------------------
# Identity recovery
# ----------------------------------------------------------------------------------------


def _identity_cases():
    rng = np.random.default_rng(3)
    yield "a batch of 10 x 3 with spreads 2, 0.1 and 0.003", \
        rng.normal(loc=[5.0, -1.0, 0.5], scale=[2.0, 0.1, 0.003], size=(10, 3)), 1e-5
    yield "a batch of 6 x 2 with eps = 0.1", rng.normal(loc=[1.0, 2.0], scale=[1.0, 0.5], size=(6, 2)), 0.1


def check_identity_parameters(reader_parameters) -> Feedback:
    """Check ``reader_parameters(x, eps) -> (gamma, beta)``: with these, BN must return x itself
    (to 1e-12 relative to the spread of x).

    Names the usual mistakes: gamma = sqrt(var) without eps, the unbiased variance, gamma and
    beta swapped, gamma = var + eps without the square root.
    """
    feedback = Feedback("identity recovery, my_identity_parameters")
    for description, x, eps in _identity_cases():
        try:
            result = call_reader_function(reader_parameters, x.copy(), eps)
        except NotAttempted:
            return Feedback(feedback.exercise, passed=False, attempted=False)
        except Exception as error:
            feedback.add(f"On {description}, your function raised {type(error).__name__}: {error}.")
            return feedback
        if not (isinstance(result, tuple | list) and len(result) == 2):
            feedback.add("Return two arrays, (gamma, beta), each of shape (D,).")
            return feedback
        gamma, beta = (np.asarray(value, dtype=np.float64) for value in result)
        d = x.shape[1]
        if gamma.shape != (d,) or beta.shape != (d,):
            feedback.add(f"gamma and beta must each have shape ({d},), one value per feature; "
                         f"got {gamma.shape} and {beta.shape}.")
            return feedback
        out = batchnorm_forward(x, gamma, beta, eps)[0]
        error = np.abs(out - x).max(axis=0) / x.std(axis=0)
        if np.all(error < 1e-12):
            continue
        mu, var = x.mean(axis=0), x.var(axis=0)
        known = [
            (np.sqrt(var), mu,
             "gamma = sqrt(var) leaves out eps. Algorithm 1 divides by sqrt(var + eps), so undoing "
             "it needs gamma = sqrt(var + eps); with sqrt(var) the output is shrunk by "
             "sqrt(var / (var + eps)), which is far from 1 for a feature whose variance is near eps."),
            (np.sqrt(x.var(axis=0, ddof=1) + eps), mu,
             "Your gamma uses the unbiased variance (N - 1). The forward pass divided by the biased "
             "one (1/N), so undoing it needs gamma = sqrt(x.var(axis=0) + eps)."),
            (np.sqrt(x.var(axis=0, ddof=1)), mu,
             "Your gamma uses the unbiased variance and leaves out eps: use "
             "gamma = sqrt(x.var(axis=0) + eps), the denominator of the forward pass."),
            (mu, np.sqrt(var + eps), "gamma and beta are swapped: gamma = sqrt(var + eps) scales, "
             "beta = mean shifts."),
            (var + eps, mu, "gamma must be the standard deviation sqrt(var + eps), not the variance."),
        ]
        for candidate_gamma, candidate_beta, explanation in known:
            if np.allclose(gamma, candidate_gamma, rtol=1e-9, atol=0) and np.allclose(beta, candidate_beta, rtol=1e-9, atol=1e-12):
                feedback.add(f"On {description}: {explanation}")
                return feedback
        feedback.add(f"On {description}: with your gamma and beta the output differs from x by up "
                     f"to {error.max():.3g} standard deviations. Undo the normalization: "
                     f"x = sqrt(var + eps) * x_hat + mean.")
        return feedback
    feedback.passed = True
    feedback.add("With your gamma and beta, BN returns its input to 1e-12 on every hidden case.")
    return feedback
