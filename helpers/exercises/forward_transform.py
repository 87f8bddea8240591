"""Exercise checkers of notebook 02 (the forward transform): two transfer exercises.

- ``check_mean_only_bn(fn)``: the reader's ``fn(x, beta) -> y``, *mean-only* batch
  normalization (centering without dividing by the spread, as in Salimans & Kingma's 2016
  mean-only BN): y = x - mean over the batch + beta, for x of shape (N, D).
- ``check_drop_bias(fn)``: the reader's ``fn(bias, gamma, beta, running_mean, running_var) ->
  (gamma, beta, running_mean, running_var)``: the parameters and running statistics of a BN layer
  that give the same outputs, in training *and* in eval mode, once the linear layer in front of
  it loses its bias b (z = W u + b becomes z = W u).

Both run the reader's function on hidden cases, compare with the reference, and when the answer
is wrong try the usual mistakes to say which one it is (full BN instead of mean-only, the wrong
axis, the bias folded into beta, a running mean that still contains b, ...). An answer computed
in float32 is told so, with the tolerance the checker uses.
"""

from __future__ import annotations

import numpy as np

from helpers.bn import batchnorm_forward, batchnorm_inference
from helpers.feedback import (
    Feedback,
    NotAttempted,
    call_reader_function,
    low_precision_message,
    precision_of,
)
from helpers.i18n import N_, _

__all__ = ["RTOL", "check_drop_bias", "check_mean_only_bn", "drop_bias_cases", "mean_only_cases",
           "reference_drop_bias", "reference_mean_only_bn"]

#: The relative tolerance of both checkers (float64 answers agree to ~1e-15).
RTOL = 1e-9


def _relative_error(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _close(a, b, rtol=RTOL) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and _relative_error(a, b) <= rtol


def _as_array(value, name: str, shape, feedback: Feedback):
    """``value`` as a float64 array of ``shape``, or None after saying what is wrong with it."""
    if value is None:
        feedback.add(_("{name} is None: did you forget a `return`?").format(name=name))
        return None
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        feedback.add(_("{name} is a {value}, not an array of numbers.").format(name=name, value=type(value).__name__))
        return None
    if array.shape != shape:
        feedback.add(_("{name} has shape {shape}; it should have shape {shape2}.").format(name=name, shape=array.shape, shape2=shape))
        return None
    return array


# ----------------------------------------------------------------------------------------
# Exercise 1: mean-only batch normalization
# ----------------------------------------------------------------------------------------


def reference_mean_only_bn(x, beta):
    """y = x - x.mean(axis=0) + beta: Algorithm 1 without the division by the spread (and so
    without gamma and eps). x (N, D), beta (D,) -> y (N, D)."""
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0) + np.asarray(beta, dtype=np.float64)


def mean_only_cases():
    """(description, x, beta): N != D everywhere, features of very different scales, and one
    whose mean is a million times its spread (a one-pass mean would still be fine there)."""
    rng = np.random.default_rng(2016)
    return [
        (N_("a batch of 6 examples with 3 features"), rng.normal([3.0, -1.0, 10.0], [2.0, 0.5, 4.0], (6, 3)),
         np.array([0.5, -2.0, 1.0])),
        (N_("a batch of 40 x 4 whose spreads go from 0.05 to 30"),
         rng.normal(size=(40, 4)) * [0.05, 0.3, 3.0, 30.0] + [1.0, -2.0, 0.0, 5.0], np.array([0.0, 1.0, -1.0, 2.5])),
        (N_("a batch of 9 x 2 whose mean (1e6) dwarfs its spread (0.01)"),
         1e6 + 1e-2 * rng.normal(size=(9, 2)), np.array([0.25, -0.25])),
    ]


def _mean_only_mistakes(x, beta):
    """(what the mistake computes, what the reader is told)."""
    n = len(x)
    full = batchnorm_forward(x, np.ones(x.shape[1]), beta, 1e-5)[0]
    return [
        (full, _("That is full batch normalization: you also divided by sqrt(var + eps). Mean-only BN "
                 "keeps the centering (line 1 and the subtraction of line 3) and drops the division "
                 "by the spread: y = x - mean + beta. Its output keeps each feature's own spread.")),
        (x - x.mean(axis=1, keepdims=True) + beta,
         _("You subtracted each example's own mean (over axis 1, across its features). BN, mean-only "
           "or not, takes one mean per feature over the batch: x.mean(axis=0), shape (D,).")),
        (x - x.mean() + beta,
         _("You subtracted one mean over the whole array. Each feature needs its own: x.mean(axis=0).")),
        (x - x.mean(axis=0),
         _("beta is missing: after centering, the shift beta is added, y = x - mean + beta.")),
        (x - x.mean(axis=0) - beta, _("beta has the wrong sign: y = x - mean + beta.")),
        (x + beta, _("You did not subtract the batch mean: y = x - x.mean(axis=0) + beta.")),
        (x - x.sum(axis=0) + beta,
         _("You subtracted the sum over the batch, not the mean: divide it by N (x.mean(axis=0)).")),
        (x - x.sum(axis=0) / (n - 1) + beta,
         _("You divided the sum by N - 1: that belongs to the unbiased variance, not to the mean. "
           "The mean is the sum divided by N.")),
    ]


def check_mean_only_bn(fn) -> Feedback:
    """Check the reader's ``fn(x, beta) -> y`` (mean-only BN, training mode, x (N, D)).

    Returns a Feedback: passed, or messages that name the mistake, or "not attempted"."""
    feedback = Feedback(_("mean-only batch normalization, my_mean_only_bn"))
    for description, x, beta in mean_only_cases():
        description = _(description)
        given = x.copy()
        try:
            result = call_reader_function(fn, given, beta.copy())
        except NotAttempted:
            feedback.attempted = False
            return feedback
        except Exception as error:  # the reader sees what went wrong, not a traceback
            feedback.add(_("On {description}: your function raised {value}: {error}.").format(description=description, value=type(error).__name__, error=error))
            return feedback
        if not np.array_equal(given, x):
            feedback.add(_("Your function changed its input x in place (e.g. x -= mean): compute a new "
                         "array, the caller still needs x."))
            return feedback
        precision = precision_of(result)
        y = _as_array(result, _("your output"), x.shape, feedback)
        if y is None:
            return feedback
        expected = reference_mean_only_bn(x, beta)
        if _close(y, expected):
            continue
        for candidate, explanation in _mean_only_mistakes(x, beta):
            if _close(y, candidate, rtol=1e-6):
                feedback.add(_("On {description}: {explanation}").format(description=description, explanation=explanation))
                return feedback
        error = _relative_error(y, expected)
        note = low_precision_message(precision, error, RTOL)
        if note:
            feedback.add(_("On {description}: {note}").format(description=description, note=note))
            return feedback
        means = y.mean(axis=0)
        hint = (_("each output column should have mean beta = "
                  "{beta}, yours have {means}").format(beta=np.round(beta, 4), means=np.round(means, 4))
                if not np.allclose(means, beta, rtol=1e-6, atol=1e-6 * np.abs(x).max())
                else _("the column means are right (beta), but the values are not x - mean + beta: "
                       "mean-only BN changes no spread"))
        feedback.add(_("On {description}: your output differs from the reference by up to "
                     "{value:.3g}; {hint}.").format(description=description, value=np.max(np.abs(y - expected)), hint=hint))
        return feedback
    feedback.passed = True
    feedback.add(_("Each output column has mean exactly beta and keeps the input's spread, on every "
                 "hidden case. Mean-only BN fixes the first moment only: notice what it leaves to "
                 "the layers above."))
    return feedback


# ----------------------------------------------------------------------------------------
# Exercise 2: drop the bias in front of BN
# ----------------------------------------------------------------------------------------


def reference_drop_bias(bias, gamma, beta, running_mean, running_var):
    """The same outputs without the bias b: in training the batch mean absorbs b, so gamma and
    beta stay; in eval mode BN subtracts the running mean, which was measured on inputs that
    contained b, so it loses b too. The variance does not see a constant shift."""
    return (np.array(gamma, dtype=np.float64), np.array(beta, dtype=np.float64),
            np.asarray(running_mean, dtype=np.float64) - np.asarray(bias, dtype=np.float64),
            np.array(running_var, dtype=np.float64))


def drop_bias_cases():
    """(description, u, weight, bias, gamma, beta, running_mean, running_var): a linear layer
    z = u @ weight.T + bias in front of BN, with running statistics as training left them
    (measured on inputs that contain the bias)."""
    rng = np.random.default_rng(1502)
    cases = []
    for description, n, d_in, d_out in [(N_("a layer 5 -> 3 and a batch of 8"), 8, 5, 3),
                                         (N_("a layer 4 -> 6 and a batch of 16"), 16, 4, 6)]:
        weight = rng.normal(size=(d_out, d_in))
        bias = rng.normal(0.0, 3.0, d_out)
        gamma, beta = rng.uniform(0.5, 2.0, d_out), rng.normal(size=d_out)
        population = rng.normal(size=(500, d_in)) @ weight.T + bias   # what the running stats saw
        running_mean = population.mean(axis=0) + rng.normal(0.0, 0.05, d_out)
        running_var = population.var(axis=0, ddof=1) * rng.uniform(0.9, 1.1, d_out)
        u = rng.normal(size=(n, d_in)) + rng.normal(0.0, 0.5, d_in)
        cases.append((description, u, weight, bias, gamma, beta, running_mean, running_var))
    return cases


def _outputs(u, weight, bias, gamma, beta, running_mean, running_var):
    """(training-mode output, eval-mode output) of BN(u @ weight.T + bias)."""
    z = u @ weight.T + (0.0 if bias is None else bias)
    return (batchnorm_forward(z, gamma, beta)[0],
            batchnorm_inference(z, gamma, beta, running_mean, running_var))


def _drop_bias_diagnosis(answer, case) -> str | None:
    """The explanation of a known mistake in ``answer`` (gamma, beta, running_mean, running_var)."""
    _description, _u, _weight, bias, gamma, beta, running_mean, running_var = case
    new_gamma, new_beta, new_mean, new_var = answer

    def same(a, b):  # compares values, not outputs: loose enough to let a float32 answer through
        return _close(a, b, rtol=1e-6)

    scale = np.sqrt(running_var + 1e-5)
    right = dict(gamma=same(new_gamma, gamma), beta=same(new_beta, beta),
                 mean=same(new_mean, running_mean - bias), var=same(new_var, running_var))
    if same(new_beta, beta + gamma * bias / scale) and same(new_mean, running_mean):
        return (_("You moved b into beta the way folding does for eval mode (beta + gamma * b / "
                  "sqrt(running_var + eps)) and kept the running mean. That keeps eval mode right but "
                  "breaks training mode: there BN subtracts the batch mean, which already lost b, so "
                  "the output would shift by gamma * b / sqrt(running_var + eps). Change the running "
                  "mean instead, and leave beta alone."))
    if not right["beta"] and same(new_beta, beta + bias):
        return (_("You added b to beta. In training mode BN subtracts the batch mean, and the batch "
                  "mean contains b: BN(W u + b) = BN(W u), so b never reached the output and beta "
                  "must stay as it is (with beta + b every output would shift by b)."))
    if not right["beta"] and same(new_beta, beta - bias):
        return (_("You subtracted b from beta. In training mode b never reached the output (the batch "
                  "mean absorbs it), so beta stays as it is."))
    if not right["gamma"]:
        return (_("gamma changed. A constant shift of the inputs does not change their spread, so the "
                  "scale gamma stays as it is."))
    if not right["var"]:
        if same(new_var, running_var - bias**2) or same(new_var, running_var + bias**2):
            return (_("You changed the running variance by b². Adding a constant to every input does "
                      "not change their variance: the running variance stays as it is."))
        return (_("The running variance changed. A constant shift b does not change the variance of "
                  "the inputs, so it stays as it is."))
    if not right["mean"]:
        if same(new_mean, running_mean):
            return (_("gamma, beta and the running variance are right, and training mode is: but in "
                      "eval mode BN subtracts the running mean, which was estimated on inputs that "
                      "contained b. Without the bias the inputs are b lower, so the running mean must "
                      "be too: running_mean - b."))
        if same(new_mean, running_mean + bias):
            return (_("The running mean moves the wrong way: without the bias the inputs are b lower, "
                      "so the running mean becomes running_mean - b."))
    return None


def check_drop_bias(fn) -> Feedback:
    """Check the reader's ``fn(bias, gamma, beta, running_mean, running_var) -> (gamma, beta,
    running_mean, running_var)``: with them, BN after the bias-free layer must give the same
    outputs as before, in training and in eval mode, on hidden batches."""
    feedback = Feedback(_("dropping the bias in front of BN, drop_bias"))
    for case in drop_bias_cases():
        description, u, weight, bias, gamma, beta, running_mean, running_var = case
        description = _(description)
        arguments = [a.copy() for a in (bias, gamma, beta, running_mean, running_var)]
        try:
            result = call_reader_function(fn, *arguments)
        except NotAttempted:
            feedback.attempted = False
            return feedback
        except Exception as error:
            feedback.add(_("On {description}: your function raised {value}: {error}.").format(description=description, value=type(error).__name__, error=error))
            return feedback
        if not all(np.array_equal(a, b) for a, b in zip(arguments, (bias, gamma, beta, running_mean, running_var))):
            feedback.add(_("Your function changed its input arrays in place (e.g. running_mean -= bias): "
                         "return new arrays and leave the layer's old ones as they were."))
            return feedback
        if not (isinstance(result, (tuple, list)) and len(result) == 4):
            feedback.add(_("Return four arrays, in this order: gamma, beta, running_mean, running_var."))
            return feedback
        precision = precision_of(result)
        answer = [_as_array(value, name, bias.shape, feedback)
                  for value, name in zip(result, ("gamma", "beta", "running_mean", "running_var"))]
        if any(a is None for a in answer):
            return feedback
        before = _outputs(u, weight, bias, gamma, beta, running_mean, running_var)
        try:
            after = _outputs(u, weight, None, *answer)
        except ValueError as error:  # e.g. a negative running variance
            after, problem = None, str(error)
        if after is not None and _close(after[0], before[0]) and _close(after[1], before[1]):
            continue
        explanation = _drop_bias_diagnosis(answer, case)
        if explanation:
            feedback.add(_("On {description}: {explanation}").format(description=description, explanation=explanation))
            return feedback
        if after is None:
            feedback.add(_("On {description}: BN cannot run with your values: {problem}.").format(description=description, problem=problem))
            return feedback
        error = max(_relative_error(a, b) for a, b in zip(after, before))
        note = low_precision_message(precision, error, RTOL)
        modes = [mode for mode, a, b in zip((N_("training"), N_("eval")), after, before) if not _close(a, b)]
        feedback.add(_("On {description}: {note}").format(description=description, note=note) if note else
                     _("On {description}: with your values the {value}-mode output "
                     "differs from the layer with the bias by up to {error:.2g} (relative). "
                     "Work out what each mode subtracts: training mode the batch mean, eval mode "
                     "the running mean.").format(description=description, value=_(" and ").join(_(mode) for mode in modes), error=error))
        return feedback
    feedback.passed = True
    feedback.add(_("Without the bias, BN gives the same outputs in training and in eval mode on every "
                 "hidden case: the bias was dead weight (its gradient is 0, notebook 03 §10), and "
                 "only the running mean remembered it."))
    return feedback
