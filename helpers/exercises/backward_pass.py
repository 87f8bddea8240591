"""Exercise checkers of notebook 03 (the backward pass): three transfer exercises.

- ``check_mean_only_backward(fn)``: the reader's ``fn(dout, x, beta) -> (dx, dbeta)``, the
  gradients of *mean-only* BN, y = x - mean(x) + beta (notebook 02's exercise), by the graph
  method of §2: only the path through the mean is left.
- ``check_linear_bn_backward(fn)``: the reader's ``fn(dout, u, weight, bias, gamma, eps) ->
  (du, dweight, dbias)`` for a linear layer with a bias followed by BN in training mode,
  z = u @ weight.T + bias, y = BN(z). The chain rule through BN's backward (helpers.bn may be
  used) and the answer to "why drop the bias": dbias is 0.
- ``check_weight_scaling(answers)``: the reader's predictions, as numbers, of how much the
  output, the input gradient, the weight gradient and the relative weight update change when
  the weights in front of BN are multiplied by 10 (§9).

Each runs hidden cases against the reference and names the mistake. The backward checkers
recognize the BN-backward mistakes of ``variant_backward`` (detached statistics, a missing
path, unbiased variance, eps missing...) inside the linear layer's gradients too, and an answer
computed in float32 is told so, with the tolerance that applies.
"""

from __future__ import annotations

import math

import numpy as np

from helpers.bn import batchnorm_backward_compact, batchnorm_forward
from helpers.feedback import (
    Feedback,
    NotAttempted,
    call_reader_function,
    low_precision_message,
    precision_of,
)
from helpers.i18n import N_, _

__all__ = ["MISTAKES", "RTOL", "SCALE", "check_linear_bn_backward", "check_mean_only_backward",
           "check_weight_scaling", "linear_bn_cases", "mean_only_cases", "reference_backward",
           "reference_linear_bn_backward", "reference_mean_only_backward", "variant_backward",
           "weight_scaling_answers"]

#: The relative tolerance of the backward checkers (float64 answers agree to ~1e-14).
RTOL = 1e-8


def _relative_error(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)) if b.size else 0.0


def _close(a, b, rtol=RTOL, scale=None) -> bool:
    """Equal to a relative ``rtol`` of the larger of |b| and ``scale`` (a gradient that should be 0
    is judged against the size of the other gradients)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return False
    size = max(float(np.max(np.abs(b))) if b.size else 0.0, scale or 0.0, 1e-300)
    return float(np.max(np.abs(a - b))) <= rtol * size if a.size else True


def _as_array(value, name: str, shape, feedback: Feedback, hints=None):
    """``value`` as a float64 array of ``shape``, or None after saying what is wrong with it."""
    if value is None:
        feedback.add(_("{name} is None: did you forget to return it?").format(name=name))
        return None
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        feedback.add(_("{name} is a {value}, not an array of numbers.").format(name=name, value=type(value).__name__))
        return None
    if array.shape != shape:
        feedback.add((hints or {}).get(array.shape, _("{name} has shape {shape}; expected {shape2}.").format(
            name=name, shape=array.shape, shape2=shape)))
        return None
    return array


def _call(fn, arguments, description, feedback):
    """The reader's result, or None (after a message, or with feedback.attempted = False)."""
    try:
        return call_reader_function(fn, *arguments)
    except NotAttempted:
        feedback.attempted = False
    except Exception as error:  # the reader sees what went wrong, not a traceback
        feedback.add(_("On {description}: your function raised {value}: {error}.").format(description=description, value=type(error).__name__, error=error))
    return None


# ----------------------------------------------------------------------------------------
# BN's backward and its typical mistakes (used inside the linear layer's checker)
# ----------------------------------------------------------------------------------------


def reference_backward(dout, x, gamma, eps=1e-5):
    """BN's gradients (dx, dgamma, dbeta) from the raw inputs: helpers.bn's closed form."""
    _out, cache = batchnorm_forward(x, gamma, np.zeros_like(gamma), eps)
    return batchnorm_backward_compact(dout, cache)


def variant_backward(dout, x, gamma, eps=1e-5, *, ddof=0, use_eps=None, mean_term=True,
                     var_term=True, detached=False, divide_by_n=True, with_gamma=True,
                     normalized_dgamma=True):
    """BN's closed-form backward with one or more typical mistakes switched on (all off = right).

    Args:
        ddof:        1 for the unbiased variance (divides by N - 1)
        use_eps:     the eps actually added (None: the eps argument; 0.0: eps forgotten;
                     1e-5: eps hard-coded whatever the argument says)
        mean_term:   keep the -dbeta term (the path through the mean)
        var_term:    keep the -x_hat * dgamma term (the path through the variance)
        detached:    dx = gamma * dout / std (mean and variance treated as constants)
        divide_by_n: keep the 1/N in front
        with_gamma:  keep gamma in dx
        normalized_dgamma: dgamma = sum(dout * x_hat) (False: sum(dout * xc))

    Returns:
        dx (N, D), dgamma (D,), dbeta (D,)
    """
    n = x.shape[0]
    added = eps if use_eps is None else use_eps
    xc = x - x.mean(axis=0)
    var = (xc**2).sum(axis=0) / (n - ddof)
    std = np.sqrt(var + added)
    x_hat = xc / std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * (x_hat if normalized_dgamma else xc)).sum(axis=0)
    scale = (gamma if with_gamma else 1.0) / std
    if detached:
        return scale * dout, dgamma, dbeta
    bracket = n * dout
    if mean_term:
        bracket = bracket - dbeta
    if var_term:
        bracket = bracket - x_hat * (dout * x_hat).sum(axis=0)
    dx = scale * bracket / (n if divide_by_n else 1)
    return dx, dgamma, dbeta


#: (keyword arguments of variant_backward, what the reader is told)
MISTAKES = [
    (dict(detached=True),
     N_("BN's backward treats the batch mean and variance as constants (detached statistics): dL/dz "
        "= gamma * dout / sqrt(var + eps). Both depend on every z_i, so dL/dz needs the two extra "
        "terms: gamma / (N * std) * (N * dout - sum(dout) - z_hat * sum(dout * z_hat)).")),
    (dict(mean_term=False),
     N_("In BN's backward the term from the path through the mean is missing (-sum(dout)). "
        "Symptom: sum(dL/dz) over the batch is not 0, and with it dbias.")),
    (dict(var_term=False),
     N_("In BN's backward the term from the path through the variance is missing "
        "(-z_hat * sum(dout * z_hat)): the popular formula of §7.")),
    (dict(ddof=1),
     N_("Your variance divides by N - 1 (unbiased). BN in training normalizes with the biased batch "
        "variance, mean((z - mu)**2), dividing by N.")),
    (dict(use_eps=0.0),
     N_("eps is missing: the standard deviation is sqrt(var + eps), not sqrt(var).")),
    (dict(use_eps=1e-5),
     N_("Your function ignores its eps argument (it uses 1e-5 whatever eps is): use the eps passed in.")),
    (dict(divide_by_n=False),
     N_("BN's dL/dz is N times too large: the 1/N in front of the closed form is missing.")),
    (dict(with_gamma=False),
     N_("gamma is missing from BN's dL/dz: the upstream gradient reaches z_hat multiplied by gamma.")),
]


# ----------------------------------------------------------------------------------------
# Exercise 1: the backward pass of mean-only BN
# ----------------------------------------------------------------------------------------


def reference_mean_only_backward(dout, x, beta):
    """Mean-only BN, y = x - mean(x) + beta: dx = dout - mean(dout) (the direct path and the path
    through the mean), dbeta = sum(dout). x and beta do not enter."""
    dout = np.asarray(dout, dtype=np.float64)
    return dout - dout.mean(axis=0), dout.sum(axis=0)


def mean_only_cases():
    """(description, dout, x, beta), N != D everywhere."""
    rng = np.random.default_rng(2018)
    cases = []
    for n, d in [(6, 3), (4, 7), (32, 2)]:
        cases.append((_("a batch of {n} x {d}").format(n=n, d=d), rng.standard_normal((n, d)),
                      rng.normal(2.0, 3.0, (n, d)), rng.standard_normal(d)))
    return cases


def _mean_only_mistakes(dout, x, beta):
    full = reference_backward(dout, x, np.ones(x.shape[1]))[0]
    return [
        (dout, None, _("dx = dout leaves out the path through the mean: the mean of x depends on every "
                       "x_i (d mean / d x_i = 1/N), so dx = dout - mean(dout). Symptom: sum(dx) is not 0, "
                       "yet shifting the whole batch changes nothing.")),
        (dout - dout.sum(axis=0), None, _("You subtracted sum(dout): the path through the mean carries a "
                                          "1/N (mean = sum / N), so dx = dout - dout.mean(axis=0).")),
        (dout - dout.mean(axis=1, keepdims=True), None,
         _("You subtracted each example's mean over its features (axis 1). The mean that mean-only BN "
           "subtracts is over the batch, per feature: dx = dout - dout.mean(axis=0).")),
        (full, None, _("That is full BN's dx (gamma = 1). Mean-only BN has no division by the spread, so "
                       "the path through the variance is gone too: dx = dout - dout.mean(axis=0).")),
        (dout + dout.mean(axis=0), None, _("The path through the mean enters with a minus sign "
                                           "(x_c = x - mu): dx = dout - dout.mean(axis=0).")),
        (None, dout.mean(axis=0), _("dbeta is the mean of dout over the batch; beta is used by all N "
                                    "rows, so its gradient is the sum: dout.sum(axis=0).")),
        (None, (dout * x).sum(axis=0), _("dbeta = sum(dout * x) is how a scale's gradient looks; beta is "
                                         "only added, so dbeta = dout.sum(axis=0).")),
    ]


def check_mean_only_backward(fn) -> Feedback:
    """Check ``fn(dout, x, beta) -> (dx, dbeta)`` for mean-only BN on hidden cases."""
    feedback = Feedback(_("the backward pass of mean-only BN, my_mean_only_backward"))
    for description, dout, x, beta in mean_only_cases():
        n, d = dout.shape
        result = _call(fn, (dout.copy(), x.copy(), beta.copy()), description, feedback)
        if result is None:
            if feedback.attempted and not feedback.messages:
                feedback.add(_("Your function returned None: did you forget the `return`?"))
            return feedback
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            feedback.add(_("Return two arrays, in this order: dx, dbeta."))
            return feedback
        precision = precision_of(result)
        dx = _as_array(result[0], "dx", (n, d), feedback)
        dbeta = _as_array(result[1], "dbeta", (d,), feedback, hints={
            (n, d): _("dbeta has shape {shape}, one value per example: beta is shared by the N rows, "
                      "so its gradient is their sum, dout.sum(axis=0), shape ({d},).").format(shape=(n, d), d=d),
            (n,): _("dbeta has shape {shape}: it is summed over the features; sum over the batch "
                    "(axis=0).").format(shape=(n,))})
        if dx is None or dbeta is None:
            return feedback
        right_dx, right_dbeta = reference_mean_only_backward(dout, x, beta)
        dx_right = _close(dx, right_dx, scale=np.abs(dout).max())
        dbeta_right = _close(dbeta, right_dbeta)
        if dx_right and dbeta_right:
            continue
        for wrong_dx, wrong_dbeta, explanation in _mean_only_mistakes(dout, x, beta):
            if (wrong_dx is None or _close(wrong_dx, right_dx, rtol=1e-6)) and \
                    (wrong_dbeta is None or _close(wrong_dbeta, right_dbeta, rtol=1e-6)):
                continue  # this mistake gives the right answer on this case: it says nothing
            # a mistake in one gradient (the other one None) matches when the other one is right
            dx_matches = dx_right if wrong_dx is None else _close(dx, wrong_dx, rtol=1e-6)
            dbeta_matches = dbeta_right if wrong_dbeta is None else _close(dbeta, wrong_dbeta, rtol=1e-6)
            if dx_matches and dbeta_matches:
                feedback.add(_("On {description}: {explanation}").format(description=description, explanation=explanation))
                return feedback
        error = max(_relative_error(dx, right_dx), _relative_error(dbeta, right_dbeta))
        note = low_precision_message(precision, error, RTOL)
        wrong = [name for name, ok in (("dx", dx_right), ("dbeta", dbeta_right)) if not ok]
        feedback.add(_("On {description}: {note}").format(description=description, note=note) if note else
                     _("On {description}: {value} differ from the reference "
                       "(by up to {error:.2g}, relative). Walk the graph "
                       "of §1 without the variance nodes.").format(description=description,
                                                                   value=_(" and ").join(wrong), error=error))
        return feedback
    feedback.passed = True
    feedback.add(_("dx = dout - mean(dout) and dbeta = sum(dout) on every hidden case. Note what does "
                 "not appear: x and beta. Every column of dx sums to 0 over the batch, as in full BN."))
    return feedback


# ----------------------------------------------------------------------------------------
# Exercise 2: a linear layer with a bias, then BN
# ----------------------------------------------------------------------------------------


def reference_linear_bn_backward(dout, u, weight, bias, gamma, eps=1e-5):
    """z = u @ weight.T + bias, y = BN(z) (training mode). Returns du (N, D_in), dweight
    (D_out, D_in), dbias (D_out,); dbias is 0, up to rounding, because sum(dz) = 0."""
    z = u @ weight.T + bias
    dz = reference_backward(dout, z, gamma, eps)[0]
    return dz @ weight, dz.T @ u, dz.sum(axis=0)


def linear_bn_cases():
    """(description, dout, u, weight, bias, gamma, eps): D_in != D_out != N, one larger eps."""
    rng = np.random.default_rng(303)
    cases = []
    for n, d_in, d_out, eps in [(8, 5, 3, 1e-5), (16, 3, 6, 1e-5), (6, 4, 2, 1e-2)]:
        cases.append((_("a layer {d_in} -> {d_out} on a batch of {n} (eps = {eps:g})").format(
                          d_in=d_in, d_out=d_out, n=n, eps=eps),
                      rng.standard_normal((n, d_out)), rng.normal(0.5, 1.0, (n, d_in)),
                      rng.normal(0.0, 0.7, (d_out, d_in)), rng.normal(0.0, 2.0, d_out),
                      rng.uniform(0.5, 2.0, d_out) * rng.choice([-1.0, 1.0], d_out), eps))
    return cases


def _linear_bn_mistakes(dout, u, weight, bias, gamma, eps):
    """(du, dweight, dbias or None for 'any', what the reader is told)."""
    z = u @ weight.T + bias
    right = reference_linear_bn_backward(dout, u, weight, bias, gamma, eps)
    mistakes = [
        (right[0], right[1], dout.sum(axis=0),
         _("du and dweight are right, but dbias = sum(dout) is dbeta, the gradient of the shift that "
           "comes after the normalization. The bias is added before it: BN subtracts the batch mean, "
           "which contains b, so b cannot change the output and dbias = sum(dz) = 0 (§8: the "
           "gradient BN passes back sums to 0 over the batch). That is why BN layers follow "
           "bias-free linear layers.")),
        (right[0], right[1], (dout * gamma).sum(axis=0),
         _("dbias = sum(gamma * dout) skips BN's backward for the bias. b enters before BN, "
           "so dbias = sum(dz) with dz the gradient BN passes back, which is 0.")),
        (dout @ weight, dout.T @ u, dout.sum(axis=0),
         _("You passed dout straight to the linear layer: BN sits between them. First go back "
           "through BN (dz = BN's dx, e.g. with helpers.bn), then du = dz @ weight, "
           "dweight = dz.T @ u, dbias = dz.sum(axis=0).")),
    ]
    for keywords, message in MISTAKES:
        dz = variant_backward(dout, z, gamma, eps, **keywords)[0]
        mistakes.append((dz @ weight, dz.T @ u, None, _(message)))
    return mistakes


def check_linear_bn_backward(fn) -> Feedback:
    """Check ``fn(dout, u, weight, bias, gamma, eps) -> (du, dweight, dbias)`` on hidden cases."""
    feedback = Feedback(_("a linear layer with a bias, then BN: my_linear_bn_backward"))
    for case in linear_bn_cases():
        description, dout, u, weight, bias, gamma, eps = case
        n, d_in = u.shape
        d_out = weight.shape[0]
        result = _call(fn, (dout.copy(), u.copy(), weight.copy(), bias.copy(), gamma.copy(), eps),
                       description, feedback)
        if result is None:
            if feedback.attempted and not feedback.messages:
                feedback.add(_("Your function returned None: did you forget the `return`?"))
            return feedback
        if not (isinstance(result, (tuple, list)) and len(result) == 3):
            feedback.add(_("Return three arrays, in this order: du, dweight, dbias."))
            return feedback
        precision = precision_of(result)
        du = _as_array(result[0], "du", (n, d_in), feedback, hints={
            (n, d_out): _("du has shape {shape}, the shape of z, not of u {shape2}: z = u @ weight.T, "
                          "so du = dz @ weight (not dz @ weight.T).").format(shape=(n, d_out), shape2=(n, d_in))})
        dweight = _as_array(result[1], "dweight", (d_out, d_in), feedback, hints={
            (d_in, d_out): _("dweight has shape {shape}, that of weight.T: with z = u @ weight.T, "
                             "dweight = dz.T @ u, shape {shape2} like weight.").format(shape=(d_in, d_out),
                                                                                      shape2=(d_out, d_in))})
        dbias = _as_array(result[2], "dbias", (d_out,), feedback, hints={
            (n, d_out): _("dbias has shape {shape}: the bias is shared by the N rows, so its "
                          "gradient is a sum over the batch, shape ({d_out},).").format(shape=(n, d_out), d_out=d_out)})
        if du is None or dweight is None or dbias is None:
            return feedback
        right = reference_linear_bn_backward(dout, u, weight, bias, gamma, eps)
        size = max(np.abs(right[0]).max(), np.abs(right[1]).max())
        answer = (du, dweight, dbias)
        if all(_close(a, r, scale=size) for a, r in zip(answer, right)):
            continue
        for wrong_du, wrong_dweight, wrong_dbias, explanation in _linear_bn_mistakes(*case[1:]):
            if _close(wrong_du, right[0], rtol=1e-6) and _close(wrong_dweight, right[1], rtol=1e-6) and \
                    (wrong_dbias is None or _close(wrong_dbias, right[2], rtol=1e-6, scale=size)):
                continue  # this mistake gives the right answer on this case (e.g. eps = 1e-5 hard-coded)
            if _close(du, wrong_du, rtol=1e-6) and _close(dweight, wrong_dweight, rtol=1e-6) and \
                    (wrong_dbias is None or _close(dbias, wrong_dbias, rtol=1e-6, scale=size)):
                feedback.add(_("On {description}: {explanation}").format(description=description, explanation=explanation))
                return feedback
        error = max(float(np.max(np.abs(a - r))) / size for a, r in zip(answer, right))
        note = low_precision_message(precision, error, RTOL)
        if note:
            feedback.add(_("On {description}: {note}").format(description=description, note=note))
            return feedback
        wrong = [name for name, a, r in zip(("du", "dweight", "dbias"), answer, right)
                 if not _close(a, r, scale=size)]
        hint = ""
        if wrong == ["dbias"]:
            hint = _(" du and dweight are right; what can the bias change, once BN has subtracted "
                     "the batch mean?")
        feedback.add(_("On {description}: {value} differ from the reference (by up to "
                     "{error:.2g}, relative to the largest gradient).{hint}").format(description=description, value=', '.join(wrong), error=error, hint=hint))
        return feedback
    feedback.passed = True
    feedback.add(_("du, dweight and dbias agree with the reference on every hidden case, and your "
                 "dbias is 0 up to rounding: a bias in front of BN gets no gradient at all."))
    return feedback


# ----------------------------------------------------------------------------------------
# Exercise 3: the weights scaled by 10
# ----------------------------------------------------------------------------------------

#: the factor the weights in front of BN are multiplied by
SCALE = 10.0

#: quantity -> (what it is, the factor it changes by when W becomes SCALE * W)
_QUANTITIES = {
    "output": (N_("BN's output"), 1.0),
    "grad_input": (N_("the gradient with respect to the layer's input u"), 1.0),
    "grad_weight": (N_("the gradient with respect to the weights, |dL/d(aW)|"), 1.0 / SCALE),
    "relative_update": (N_("one SGD step's relative change of the weights, |ΔW| / |W|"), 1.0 / SCALE**2),
}


def weight_scaling_answers() -> dict:
    """The answers: quantity -> the factor (for a = SCALE), up to eps."""
    return {key: factor for key, (_name, factor) in _QUANTITIES.items()}


_WHY = {
    "output": N_("BN(aWu) = BN(Wu): scaling the weights scales every z_i, their mean and their standard "
                 "deviation by a, and the normalization divides it out (up to eps)."),
    "grad_input": N_("The output does not change for any u when W is scaled, so neither does its "
                     "derivative with respect to u: the factor is 1."),
    "grad_weight": N_("The loss is scale invariant, L(aW) = L(W) for every W. Differentiate both sides "
                      "with respect to W: a times the gradient at aW equals the gradient at W, so "
                      "dL/d(aW) = (1/a) dL/dW: ten times larger weights, a ten times smaller gradient."),
    "relative_update": N_("One step changes aW by lr * dL/d(aW), which is 1/a times as large, while |aW| "
                          "is a times as large: the ratio falls by 1/a². Large weights learn slowly, the "
                          "self-stabilization of the paper's §3.3."),
}


def check_weight_scaling(answers) -> Feedback:
    """Check a dict {quantity: factor} for the weights in front of BN multiplied by SCALE (10):
    "output", "grad_input", "grad_weight", "relative_update"."""
    feedback = Feedback(_("the weights in front of BN multiplied by {SCALE:g}").format(SCALE=SCALE), to_fill=_("the answers"),
                        when_correct=_("all four factors are right"))
    if not isinstance(answers, dict):
        feedback.add(_("Give a dict, {'output': ..., 'grad_input': ..., 'grad_weight': ..., "
                     "'relative_update': ...}, with one number each."))
        return feedback
    missing = [key for key in _QUANTITIES if answers.get(key) is None]
    if len(missing) == len(_QUANTITIES):
        feedback.attempted = False
        return feedback
    unknown = sorted(set(answers) - set(_QUANTITIES))
    if unknown:
        feedback.add(_("Unknown keys {unknown}; the four are {value}.").format(unknown=unknown, value=list(_QUANTITIES)))
    wrong = 0
    for key, (what, factor) in _QUANTITIES.items():
        value = answers.get(key)
        what = _(what)
        if value is None:
            feedback.add(_("{key}: no answer yet ({what}).").format(key=key, what=what))
            wrong += 1
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            feedback.add(_("{key}: give a number (the factor), not {value!r}.").format(key=key, value=value))
            wrong += 1
            continue
        if math.isclose(value, factor, rel_tol=1e-2):
            feedback.add(_("{key} = {value:g}: right. {value2}").format(key=key, value=value, value2=_(_WHY[key])))
            continue
        wrong += 1
        if math.isclose(value, 1.0 / factor, rel_tol=1e-2) and factor != 1.0:
            slip = _("{value:g} is the inverse of the factor: it gets smaller, not larger. ").format(value=value)
        elif math.isclose(value, SCALE, rel_tol=1e-2) or math.isclose(value, SCALE**2, rel_tol=1e-2):
            slip = _("that would be true without BN, where everything after the layer scales with W. ")
        elif key == "relative_update" and math.isclose(value, 1.0 / SCALE, rel_tol=1e-2):
            slip = _("1/a is how the gradient shrinks; the relative update also divides by |W|, which grew. ")
        elif key == "grad_weight" and math.isclose(value, 1.0 / SCALE**2, rel_tol=1e-2):
            slip = _("1/a² is the relative update; the gradient itself shrinks by 1/a. ")
        else:
            slip = ""
        feedback.add(_("{key} = {value:g} is not the factor for {what}: {slip}{value2}").format(key=key, value=value, what=what, slip=slip, value2=_(_WHY[key])))
    feedback.passed = wrong == 0 and not unknown
    return feedback
