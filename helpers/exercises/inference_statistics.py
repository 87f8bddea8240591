"""Exercise checkers for notebook 04 (inference statistics).

- ``check_running_stats_update``: one step of the running statistics from a training batch,
  in torch's convention.
- ``check_fold_batchnorm``: fold an eval-mode BN into the Linear or Conv layer before it.

Each runs the reader's function on hidden cases, compares with ``helpers.bn`` and, when the
answer is wrong, tries the usual mistakes one by one to say which one it is. An answer computed in
float32 (returned as float32, or rounded to float32 inside) is told so, with the tolerance the
checker uses (relative 1e-9, in float64), instead of "wrong".
"""

from __future__ import annotations

import numpy as np

from helpers.bn import fold_batchnorm, update_running_stats
from helpers.feedback import (
    LOW_PRECISION,
    Feedback,
    NotAttempted,
    call_reader_function,
    low_precision_message,
    precision_of,
)
from helpers.i18n import N_, _

__all__ = ["check_fold_batchnorm", "check_running_stats_update"]

RTOL, ATOL = 1e-9, 1e-12


def _close(a, b, rtol=RTOL) -> bool:
    """Equal to the checker's tolerance, or (a looser ``rtol``, for an answer in float32) to
    ``rtol`` relative to the largest value."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    if rtol == RTOL:
        return bool(np.allclose(a, b, rtol=RTOL, atol=ATOL))
    return bool(np.abs(a - b).max() <= rtol * np.abs(b).max())


def _rounding_tolerance(precision) -> float:
    """How close a correct answer computed in ``precision`` comes to the float64 reference
    (a thousand machine epsilons), or RTOL for float64."""
    return RTOL if precision is None else 1e3 * LOW_PRECISION[precision]


def _precision_note(precision, pairs) -> str | None:
    """The float32 message for an answer whose (got, expected) pairs differ; None if the
    difference is not a matter of precision (then the answer is wrong for another reason).
    Asked before the usual mistakes for an answer in float32, after them for one in float64
    (whose small difference may be a mistake such as a missing eps, or float32 inside)."""
    error = max(float(np.abs(np.asarray(got, dtype=np.float64) - expected).max() / np.abs(expected).max())
                for got, expected in pairs)   # relative to the largest value
    if precision is not None and error > _rounding_tolerance(precision):
        return None
    return low_precision_message(precision, error, RTOL)


def _as_pair(result, shapes, what: str):
    """The reader's result as two float arrays of the given shapes, or a message saying why not."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        return None, _("{what} should return a pair ({value} returned instead).").format(
            what=what, value=type(result).__name__)
    arrays = []
    for value, shape, name in zip(result, shapes, (N_("first"), N_("second"))):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return None, _("the {name} value returned is not an array of numbers.").format(name=_(name))
        if array.shape != shape:
            return None, _("the {name} value returned has shape {shape}, expected {shape2}.").format(
                name=_(name), shape=array.shape, shape2=shape)
        arrays.append(array)
    return arrays, None


# ----------------------------------------------------------------------------------------
# Exercise 1: the running-statistics update
# ----------------------------------------------------------------------------------------


def _running_cases():
    """(running_mean, running_var, x, momentum): hidden cases with well separated answers."""
    rng = np.random.default_rng(404)
    cases = []
    for n, d, momentum in [(8, 3, 0.1), (2, 4, 0.25), (32, 5, 0.1), (5, 2, 0.7)]:
        x = rng.normal(loc=rng.uniform(-3, 3, d), scale=rng.uniform(0.5, 2.0, d), size=(n, d))
        cases.append((rng.normal(size=d), rng.uniform(0.5, 2.0, d), x, momentum))
    return cases


def _running_reference(running_mean, running_var, x, momentum, *, keras=False, biased=False,
                       unbiased_mean=False, std=False):
    """The update with one of the usual mistakes (flags), or the correct one (no flags; the same
    as ``helpers.bn.update_running_stats``, which the checker uses as the reference)."""
    n = x.shape[0]
    batch_mean = x.mean(axis=0)
    batch_var = x.var(axis=0)  # biased
    stored_var = batch_var * n / (n - 1) if not biased else batch_var
    if std:
        stored_var = np.sqrt(stored_var)
    stored_mean = batch_mean * n / (n - 1) if unbiased_mean else batch_mean
    weight_new = 1.0 - momentum if keras else momentum
    return ((1 - weight_new) * running_mean + weight_new * stored_mean,
            (1 - weight_new) * running_var + weight_new * stored_var)


_RUNNING_MISTAKES = [
    (dict(keras=True),
     N_("momentum weights the old value in your update: new = momentum * old + (1 - momentum) * batch "
        "is the Keras / Flax convention (their momentum=0.99). In torch's convention momentum weights "
        "the new batch: new = (1 - momentum) * old + momentum * batch.")),
    (dict(biased=True),
     N_("your running variance stores the biased batch variance (divided by n). The running "
        "variance estimates the population variance, so torch stores the unbiased one: "
        "batch_var * n / (n - 1) (the paper's m/(m-1), Algorithm 2, step 10).")),
    (dict(unbiased_mean=True),
     N_("your running mean multiplies the batch mean by n / (n - 1). The batch mean is already an "
        "unbiased estimate of the population mean; only the variance needs the correction.")),
    (dict(std=True),
     N_("your running variance averages the standard deviation (a square root). Store the "
        "(unbiased) variance; the square root is taken at inference, as sqrt(running_var + eps).")),
    (dict(biased=True, keras=True),
     N_("two things: momentum weights the old value (the Keras convention; torch's momentum weights "
        "the new batch), and the running variance stores the biased batch variance (torch stores "
        "batch_var * n / (n - 1)).")),
]


def check_running_stats_update(function) -> Feedback:
    """Check ``function(running_mean, running_var, x, momentum) -> (new_mean, new_var)``.

    x is a training batch (N, D); running_mean and running_var are (D,). The function should
    return new arrays: (1 - momentum) * old + momentum * (batch mean, unbiased batch variance),
    and leave its inputs unchanged.
    """
    feedback = Feedback(_("running-statistics update"))
    found = []
    for running_mean, running_var, x, momentum in _running_cases():
        originals = [a.copy() for a in (running_mean, running_var, x)]
        try:
            result = call_reader_function(function, running_mean, running_var, x, momentum)
        except NotAttempted:
            feedback.attempted = False
            return feedback
        except Exception as error:  # the reader's code failed: say how
            feedback.add(_("your function raised {value}: {error} "
                         "(batch of shape {shape}, momentum={momentum}).").format(value=type(error).__name__, error=error, shape=x.shape, momentum=momentum))
            return feedback
        changed = [name for name, before, after in
                   zip(("running_mean", "running_var", "x"), originals, (running_mean, running_var, x))
                   if not np.array_equal(before, after)]
        if changed:
            found.append(
                (_("your function changed its inputs "
                   "{names} in place (e.g. with `running_mean *= ...`). Return new "
                   "arrays and leave the inputs alone: the caller may still need the old values "
                   "(this checker, a checkpoint, or the old mean while updating the variance).")
                 if len(changed) > 1 else
                 _("your function changed its input "
                   "{names} in place (e.g. with `running_mean *= ...`). Return new "
                   "arrays and leave the inputs alone: the caller may still need the old values "
                   "(this checker, a checkpoint, or the old mean while updating the variance)."))
                .format(names=', '.join(changed)))
            running_mean, running_var, x = originals
        d = x.shape[1]
        pair, problem = _as_pair(result, [(d,), (d,)], _("update"))
        if problem:
            found.append(problem)
            break
        new_mean, new_var = pair
        expected_mean, expected_var = update_running_stats(
            running_mean, running_var, x.mean(axis=0), x.var(axis=0), x.shape[0], momentum)
        if _close(new_mean, expected_mean) and _close(new_var, expected_var):
            continue
        precision = precision_of(result)
        note = _precision_note(precision, [(new_mean, expected_mean), (new_var, expected_var)])
        if note and precision is not None:
            found.append(note)
            break
        loose = _rounding_tolerance(precision)
        for flags, message in _RUNNING_MISTAKES:
            mistake_mean, mistake_var = _running_reference(running_mean, running_var, x, momentum, **flags)
            if _close(new_mean, mistake_mean, loose) and _close(new_var, mistake_var, loose):
                found.append(_(message))
                break
        else:
            if note:
                found.append(note)
            elif _close(new_mean, expected_mean):
                found.append(
                    _("the running mean is right but the running variance is not (expected "
                      "{expected}, got {got} for a batch of "
                      "{n}, momentum={momentum}).").format(expected=np.round(expected_var, 4),
                                                          got=np.round(new_var, 4), n=x.shape[0],
                                                          momentum=momentum))
            elif _close(new_var, expected_var):
                found.append(
                    _("the running variance is right but the running mean is not (expected "
                      "{expected}, got {got}).").format(expected=np.round(expected_mean, 4),
                                                       got=np.round(new_mean, 4)))
            else:
                found.append(
                    _("neither value matches (batch of {n}, momentum={momentum}): expected "
                      "mean {mean} and variance {var}, "
                      "got {got_mean} and {got_var}. Is the batch "
                      "mean taken over axis 0 (the examples)?").format(
                        n=x.shape[0], momentum=momentum, mean=np.round(expected_mean, 4),
                        var=np.round(expected_var, 4), got_mean=np.round(new_mean, 4),
                        got_var=np.round(new_var, 4)))
        break
    for message in dict.fromkeys(found):
        feedback.add(message)
    feedback.passed = not found
    return feedback


# ----------------------------------------------------------------------------------------
# Exercise 2: folding BN into the previous layer
# ----------------------------------------------------------------------------------------


def _fold_cases():
    """(weight, bias, gamma, beta, running_mean, running_var, eps): Linear and Conv, with and
    without bias; one case with tiny variances so that a forgotten eps shows."""
    rng = np.random.default_rng(2015)
    cases = []
    for shape, with_bias, tiny_var in [((4, 4), True, False), ((3, 5), True, False),
                                       ((3, 2, 3, 3), True, False), ((2, 3, 3, 3), False, False),
                                       ((3, 3), True, True)]:
        out = shape[0]
        weight = rng.normal(size=shape)
        bias = rng.normal(size=out) if with_bias else None
        var = rng.uniform(1e-5, 4e-5, out) if tiny_var else rng.uniform(0.3, 3.0, out)
        cases.append((weight, bias, rng.uniform(0.5, 2.0, out), rng.normal(size=out),
                      rng.normal(size=out), var, 1e-5))
    return cases


def _fold_variant(weight, bias, gamma, beta, mean, var, eps, *, no_bias=False, no_eps=False,
                  wrong_axis=False, plus_mean=False):
    """A folding with one of the usual mistakes (None if that mistake cannot be computed)."""
    b = np.zeros(weight.shape[0]) if bias is None or no_bias else bias
    scale = gamma / np.sqrt(var + (0.0 if no_eps else eps))
    if wrong_axis:
        if weight.shape[1] != weight.shape[0]:
            return None
        shape = (1, -1) + (1,) * (weight.ndim - 2)
    else:
        shape = (-1,) + (1,) * (weight.ndim - 1)
    folded_bias = scale * (b + mean) + beta if plus_mean else scale * (b - mean) + beta
    return weight * scale.reshape(shape), folded_bias


_FOLD_MISTAKES = [
    (dict(no_bias=True),
     N_("your folded bias leaves out the layer's own bias b. BN sees z = W u + b, so the new bias "
        "is scale * (b - running_mean) + beta, with scale = gamma / sqrt(running_var + eps).")),
    (dict(no_eps=True),
     N_("you divide by sqrt(running_var) (the standard deviation) instead of "
        "sqrt(running_var + eps). BN at inference uses sqrt(running_var + eps); with small "
        "variances the difference is large.")),
    (dict(wrong_axis=True),
     N_("you scaled the weight along its input axis (axis 1). Each BN channel belongs to one OUTPUT "
        "of the layer, which is axis 0 of the weight: multiply row c (Linear) or filter c (Conv) "
        "by scale[c], e.g. weight * scale[:, None] or scale.reshape(-1, 1, 1, 1).")),
    (dict(plus_mean=True),
     N_("the sign of the mean term: the folded bias is beta + scale * (b - running_mean), "
        "not beta + scale * (b + running_mean) (Algorithm 2, step 11: beta - gamma E[x] / sqrt(Var[x] + eps)).")),
    (dict(no_bias=True, no_eps=True),
     N_("two things: the folded bias leaves out the layer's own bias b, and you divide by "
        "sqrt(running_var) instead of sqrt(running_var + eps).")),
]


def _describe(weight, bias):
    kind = "Linear" if weight.ndim == 2 else "Conv"
    return _("{kind} weight {shape}, bias {bias}").format(kind=kind, shape=weight.shape,
                                                         bias='None' if bias is None else bias.shape)


def check_fold_batchnorm(function) -> Feedback:
    """Check ``function(weight, bias, gamma, beta, running_mean, running_var, eps)
    -> (folded_weight, folded_bias)``.

    weight is (out, in) for Linear or (out, in, kh, kw) for Conv; bias is (out,) or None.
    """
    feedback = Feedback(_("folding BN into the previous layer"))
    found = []
    for case in _fold_cases():
        weight, bias, gamma, beta, mean, var, eps = case
        originals = [None if a is None else a.copy() for a in case[:6]]
        where = _describe(weight, bias)
        try:
            result = call_reader_function(function, weight, bias, gamma, beta, mean, var, eps)
        except NotAttempted:
            feedback.attempted = False
            return feedback
        except Exception as error:
            message = _("your function raised {value}: {error} ({where}).").format(
                value=type(error).__name__, error=error, where=where)
            if "broadcast" in str(error) and weight.shape[0] != weight.shape[1]:
                message += _(" A broadcasting error here usually means the scale is applied along "
                             "the weight's input axis: it belongs on axis 0, the outputs.")
            elif bias is None and isinstance(error, TypeError):
                message += _(" A layer may have no bias (bias=None): treat it as zeros.")
            found.append(message)
            break
        changed = [name for name, before, after in
                   zip(("weight", "bias", "gamma", "beta", "running_mean", "running_var"),
                       originals, case[:6])
                   if before is not None and not np.array_equal(before, after)]
        if changed:
            found.append(_("your function changed {names} in place; return new arrays "
                           "(the unfolded model may still be needed, e.g. to fine-tune it).").format(
                names=', '.join(changed)))
            weight, bias, gamma, beta, mean, var = originals
        pair, problem = _as_pair(result, [weight.shape, (weight.shape[0],)], _("the folding"))
        if problem:
            found.append(problem + f" ({where})")
            break
        folded_weight, folded_bias = pair
        expected = fold_batchnorm(weight, bias, gamma, beta, mean, var, eps)
        if _close(folded_weight, expected[0]) and _close(folded_bias, expected[1]):
            continue
        precision = precision_of(result)
        note = _precision_note(precision, [(folded_weight, expected[0]), (folded_bias, expected[1])])
        if note and precision is not None:
            found.append(note + f" ({where})")
            break
        loose = _rounding_tolerance(precision)
        for flags, message in _FOLD_MISTAKES:
            mistake = _fold_variant(weight, bias, gamma, beta, mean, var, eps, **flags)
            if mistake is not None and _close(folded_weight, mistake[0], loose) and \
                    _close(folded_bias, mistake[1], loose):
                found.append(_(message))
                break
        else:
            if note:
                found.append(note + f" ({where})")
            elif _close(folded_weight, expected[0]):
                found.append(_("the folded weight is right, the folded bias is not ({where}): "
                               "it should be beta + scale * (b - running_mean).").format(where=where))
            elif _close(folded_bias, expected[1]):
                message = _("the folded bias is right, the folded weight is not ({where}): "
                            "multiply output channel c of the weight by scale[c] = "
                            "gamma[c] / sqrt(running_var[c] + eps).").format(where=where)
                if weight.ndim == 4:
                    message += _(" A Conv weight is (out, in, kh, kw): scale[:, None] lines up with "
                                 "its LAST axes, not the first; use scale.reshape(-1, 1, 1, 1), or "
                                 "scale.reshape((-1,) + (1,) * (weight.ndim - 1)) for both kinds.")
                found.append(message)
            else:
                found.append(_("neither the folded weight nor the folded bias matches ({where}).").format(where=where))
        break
    for message in dict.fromkeys(found):
        feedback.add(message)
    feedback.passed = not found
    return feedback
