"""Numerical gradient checks by centered differences (numpy only).

The idea: for a scalar loss L(x) = sum(f(x) * dout) with a *random* upstream gradient
dout, the exact gradient dL/dx is what a backward pass must return, and

    dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / (2 h)

has an error of order h^2 (plus rounding of order eps_machine / h). In float64 with
h = 1e-5 a correct backward agrees to a relative error around 1e-8 or better; a wrong one
is off by 1e-3 or more. The thresholds below make that verdict explicit.

Two things make a relative error meaningless, and ``check_layer_gradients`` guards against
both: an upstream gradient that is not independent of the input (drawn from the same seeded
stream as x, it can make the true gradient nearly 0), and a gradient that is tiny compared
with the rounding noise of the differences (then two noises are compared; the report says
"too small to judge" and gives the absolute error instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from helpers.i18n import N_, _

__all__ = [
    "GradCheckReport",
    "check_layer_gradients",
    "numerical_gradient",
    "random_probe",
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
    out_shape = np.shape(f(x))
    if dout.shape != out_shape:
        raise ValueError(
            f"dout must have the shape of f(x), {out_shape}, got {dout.shape} (it would be "
            f"broadcast, which checks a different loss)"
        )
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
    if a.size == 0:
        raise ValueError(f"rel_error needs at least one value to compare; a and b are empty (shape {a.shape})")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def verdict(error: float) -> str:
    """'correct', 'suspicious' or 'WRONG' for a float64 relative error (in English: a key;
    ``_(verdict(error))`` shows it in the current language)."""
    if error < CORRECT_BELOW:
        return N_("correct")
    if error <= WRONG_ABOVE:
        return N_("suspicious")
    return N_("WRONG")


@dataclass
class GradCheckReport:
    """Relative errors of analytic against numerical gradients, one per input.

    ``errors`` maps an input's name (e.g. "dx") to its relative error; printing the report
    gives one line per input with the verdict.

    The centered differences carry rounding noise of about ``noise``, so an entry below
    noise / CORRECT_BELOW cannot be judged by a relative error (it compares noise with
    noise). Such entries are left out of the relative error (``left_out`` counts them;
    ``absolute_errors`` holds max |analytic - numerical| over all entries). A gradient all of
    whose entries are that small (``too_small(name)``) is reported as too small to judge,
    with its absolute error, and the check does not pass. ``sizes`` holds each gradient's
    largest |entry|, ``entries`` its number of entries.
    """

    errors: dict = field(default_factory=dict)
    absolute_errors: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    left_out: dict = field(default_factory=dict)
    entries: dict = field(default_factory=dict)
    noise: float = 0.0

    @property
    def judge_above(self) -> float:
        """Entries smaller than this cannot be judged by a relative error."""
        return self.noise / CORRECT_BELOW

    def too_small(self, name: str) -> bool:
        """True if gradient ``name`` is too small for its relative error to mean anything."""
        return name in self.sizes and self.sizes[name] < self.judge_above

    @property
    def passed(self) -> bool:
        return all(error < CORRECT_BELOW and not self.too_small(name)
                   for name, error in self.errors.items())

    def _line(self, name: str, error: float) -> str:
        line = _("{name}: relative error {error}  -> ").format(name=f"{name:>7}", error=f"{error:.2e}")
        if self.too_small(name):
            return line + _(
                "too small to judge: its largest entry {size} is near the rounding noise of the "
                "differences (~{noise}); absolute error {absolute}").format(
                size=f"{self.sizes[name]:.1e}", noise=f"{self.noise:.0e}",
                absolute=f"{self.absolute_errors[name]:.1e}")
        line += _(verdict(error))
        if self.left_out.get(name):
            line += _("  ({left_out} of {entries} entries below {limit}, too small to judge, left out; "
                      "absolute error {absolute})").format(
                left_out=self.left_out[name], entries=self.entries[name],
                limit=f"{self.judge_above:.0e}", absolute=f"{self.absolute_errors[name]:.1e}")
        return line

    def __str__(self) -> str:
        lines = [self._line(name, error) for name, error in self.errors.items()]
        lines.append(_("(float64: below {correct} is correct, above {wrong} is wrong)").format(
            correct=f"{CORRECT_BELOW:.0e}", wrong=f"{WRONG_ABOVE:.0e}"))
        if any(self.too_small(name) for name in self.errors):
            lines.append(_(
                "(a gradient this small says nothing about the backward: check again with a "
                "random upstream gradient independent of x, e.g. dout=None)"))
        return "\n".join(lines)

    __repr__ = __str__


#: Mixed into the seed of check_layer_gradients's probe, so that its stream is never the one
#: np.random.default_rng(seed) gives the learner's data.
PROBE_STREAM = 0x6A09E667


def random_probe(shape, seed=0) -> np.ndarray:
    """A standard-normal upstream gradient of ``shape`` from a stream of its own.

    ``np.random.default_rng([seed, PROBE_STREAM])`` is a different stream from
    ``np.random.default_rng(seed)``, so the probe is independent of data drawn with the same
    seed. (Were it the same numbers as x, each column of dout would be an affine function of
    x_hat, the two directions BN's dx is blind to, and the true dx would be nearly 0.)
    """
    return np.random.default_rng([seed, PROBE_STREAM]).standard_normal(shape)


def check_layer_gradients(forward, backward, x, *params, dout=None, h=1e-5, seed=0):
    """Check a layer's backward pass against centered differences, in one call.

    Args:
        forward:  forward(x, *params) -> (out, cache)
        backward: backward(dout, cache) -> (dx, *dparams), one gradient per input
        x:        the input array, e.g. (N, D); float64 recommended
        *params:  the layer's parameter arrays, e.g. gamma, beta
        dout:     upstream gradient shaped like out; if None, ``random_probe(out.shape, seed)``,
                  drawn from a stream of its own (never all ones: for BN, sum(dx) = 0 makes an
                  all-ones check blind)
        h:        finite-difference step
        seed:     seed of the random dout

    Returns:
        GradCheckReport with one relative error per input: dx, then d<name> for each param
        (named dparam1, dparam2, ... unless called with gamma and beta, named dgamma, dbeta),
        the absolute errors, and which gradients are too small to judge.
    """
    inputs = [np.array(x, dtype=np.float64)] + [np.array(p, dtype=np.float64) for p in params]
    out, cache = forward(*inputs)
    if dout is None:
        dout = random_probe(np.shape(out), seed)
    analytic = backward(dout, cache)
    if len(analytic) != len(inputs):
        raise ValueError(
            f"backward returned {len(analytic)} gradients; expected {len(inputs)} (dx and one per param)"
        )
    names = ["dx"] + (
        ["dgamma", "dbeta"] if len(params) == 2 else [f"dparam{i + 1}" for i in range(len(params))]
    )
    # Each loss sum(out * dout) is rounded to about eps_machine * sqrt(sum((out * dout)**2)),
    # and the centered difference divides that by 2h; eight times that is the noise estimate
    # (random BN batches, 2 x 3 to 256 x 10, offsets up to 5, scales 0.1 to 10: the worst
    # entry's error of a correct backward was 0.1 to 1.2 times the estimate).
    terms = np.asarray(out, dtype=np.float64) * dout
    noise = 8 * np.finfo(np.float64).eps * np.sqrt(np.sum(terms**2)) / (2 * h)
    report = GradCheckReport(noise=float(noise))
    for position, (name, grad) in enumerate(zip(names, analytic)):

        def f(value, position=position):
            args = list(inputs)
            args[position] = value
            return forward(*args)[0]

        numeric = numerical_gradient(f, inputs[position], dout, h=h)
        grad = np.asarray(grad, dtype=np.float64)
        if grad.shape != numeric.shape:
            raise ValueError(f"backward's {name} has shape {grad.shape}, expected {numeric.shape}")
        entry_sizes = np.maximum(np.abs(grad), np.abs(numeric))
        judged = ~(entry_sizes < report.judge_above)  # the entries a relative error can judge (and NaN)
        report.sizes[name] = float(entry_sizes.max())
        report.absolute_errors[name] = float(np.max(np.abs(grad - numeric)))
        report.entries[name] = int(judged.size)
        report.left_out[name] = int(judged.size - judged.sum()) if judged.any() else 0
        report.errors[name] = rel_error(grad[judged], numeric[judged]) if judged.any() else rel_error(grad, numeric)
    return report
