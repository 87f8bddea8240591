"""Numerical gradient checks by centered differences (numpy only).

The idea: for a scalar loss L(x) = sum(f(x) * dout) with a *random* upstream gradient
dout, the exact gradient dL/dx is what a backward pass must return, and

    dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / (2 h)

has an error of order h^2 (plus rounding of order eps_machine / h). In float64 with
h = 1e-5 a correct backward agrees to a relative error around 1e-8 or better; a wrong one
is off by 1e-3 or more. The thresholds below make that verdict explicit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "GradCheckReport",
    "check_layer_gradients",
    "numerical_gradient",
    "rel_error",
    "verdict",
]

#: Relative errors below this are what a correct float64 backward achieves.
CORRECT_BELOW = 1e-7
#: Relative errors above this mean the backward is wrong (between the two: look closer).
WRONG_ABOVE = 1e-4


def numerical_gradient(f, x, dout, h=1e-5):
    """Centered-difference gradient of sum(f(x) * dout) with respect to x.

    Args:
        f:    function of x returning an array (any shape matching dout)
        x:    float array; it is perturbed in place one element at a time and restored
        dout: array shaped like f(x), the upstream gradient
        h:    step size

    Returns:
        grad: array shaped like x
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be a floating-point array to be perturbed, got dtype {x.dtype}")
    dout = np.asarray(dout)
    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + h
        loss_plus = np.sum(f(x) * dout, dtype=np.float64)
        x[index] = original - h
        loss_minus = np.sum(f(x) * dout, dtype=np.float64)
        x[index] = original
        grad[index] = (loss_plus - loss_minus) / (2 * h)
    return grad


def rel_error(a, b) -> float:
    """Largest element-wise relative error, max |a - b| / max(1e-8, |a| + |b|)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def verdict(error: float) -> str:
    """'correct', 'suspicious' or 'WRONG' for a float64 relative error."""
    if error < CORRECT_BELOW:
        return "correct"
    if error <= WRONG_ABOVE:
        return "suspicious"
    return "WRONG"


@dataclass
class GradCheckReport:
    """Relative errors of analytic against numerical gradients, one per input.

    ``errors`` maps an input's name (e.g. "dx") to its relative error; printing the report
    gives one line per input with the verdict.
    """

    errors: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(error < CORRECT_BELOW for error in self.errors.values())

    def __str__(self) -> str:
        lines = [
            f"{name:>7}: relative error {error:.2e}  -> {verdict(error)}"
            for name, error in self.errors.items()
        ]
        lines.append(
            f"(float64: below {CORRECT_BELOW:.0e} is correct, above {WRONG_ABOVE:.0e} is wrong)"
        )
        return "\n".join(lines)

    __repr__ = __str__


def check_layer_gradients(forward, backward, x, *params, dout=None, h=1e-5, seed=0):
    """Check a layer's backward pass against centered differences, in one call.

    Args:
        forward:  forward(x, *params) -> (out, cache)
        backward: backward(dout, cache) -> (dx, *dparams), one gradient per input
        x:        the input array, e.g. (N, D); float64 recommended
        *params:  the layer's parameter arrays, e.g. gamma, beta
        dout:     upstream gradient shaped like out; a seeded random one if None
                  (never all ones: for BN, sum(dx) = 0 makes an all-ones check blind)
        h:        finite-difference step
        seed:     seed for the random dout

    Returns:
        GradCheckReport with one relative error per input: dx, then d<name> for each param
        (named dparam1, dparam2, ... unless called with gamma and beta, named dgamma, dbeta).
    """
    inputs = [np.array(x, dtype=np.float64)] + [np.array(p, dtype=np.float64) for p in params]
    out, cache = forward(*inputs)
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(np.shape(out))
    analytic = backward(dout, cache)
    if len(analytic) != len(inputs):
        raise ValueError(
            f"backward returned {len(analytic)} gradients; expected {len(inputs)} (dx and one per param)"
        )
    names = ["dx"] + (
        ["dgamma", "dbeta"] if len(params) == 2 else [f"dparam{i + 1}" for i in range(len(params))]
    )
    report = GradCheckReport()
    for position, (name, grad) in enumerate(zip(names, analytic)):

        def f(value, position=position):
            args = list(inputs)
            args[position] = value
            return forward(*args)[0]

        numeric = numerical_gradient(f, inputs[position], dout, h=h)
        report.errors[name] = rel_error(grad, numeric)
    return report
