"""Exercise checker of notebook 03: the reader's closed-form BN backward pass.

The reader writes

    def my_batchnorm_backward(dout, x, gamma, eps=1e-5):
        ...
        return dx, dgamma, dbeta

from the raw inputs (x (N, D), gamma (D,), dout (N, D)): the batch statistics are theirs to
compute, so the mistakes people make in the forward pass (unbiased variance, no eps) can show
up here too. ``check_batchnorm_backward`` runs it on hidden cases and names the mistake:
wrong shapes, dgamma / dbeta swapped or not summed over the batch, the mean term or the
variance term missing, unbiased variance, eps missing or hard-coded, statistics detached
(treated as constants), a missing 1/N or gamma.
"""

from __future__ import annotations

import numpy as np

from helpers.bn import batchnorm_backward_compact, batchnorm_forward
from helpers.feedback import Feedback, NotAttempted, call_reader_function

__all__ = ["check_batchnorm_backward", "hidden_cases", "reference_backward", "variant_backward"]

EXERCISE = "closed-form backward (my_batchnorm_backward)"


def reference_backward(dout, x, gamma, eps=1e-5):
    """The answer: helpers.bn's closed form (beta does not enter any gradient)."""
    _, cache = batchnorm_forward(x, gamma, np.zeros_like(gamma), eps)
    return batchnorm_backward_compact(dout, cache)


def variant_backward(dout, x, gamma, eps=1e-5, *, ddof=0, use_eps=None, mean_term=True,
                     var_term=True, detached=False, divide_by_n=True, with_gamma=True,
                     normalized_dgamma=True):
    """The closed form with one or more typical mistakes switched on (all off = the answer).

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


def hidden_cases():
    """The hidden test cases: (dout, x, gamma, eps) tuples, float64, N != D everywhere.

    One case has a feature with variance below eps (where eps matters), one a small batch
    (where N - 1 and N differ a lot), one a larger eps (to catch a hard-coded 1e-5)."""
    rng = np.random.default_rng(303)
    cases = []
    for n, d, spread, eps in [(6, 3, (1.0, 2.0, 0.5), 1e-5),
                              (4, 2, (3.0, 0.7), 1e-5),
                              (16, 5, (1.0, 2e-3, 1e-2, 0.3, 5.0), 1e-5),
                              (10, 4, (0.1, 1.0, 0.05, 2.0), 1e-2)]:
        x = rng.standard_normal((n, d)) * np.array(spread) + rng.normal(0, 3, d)
        gamma = rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d)
        dout = rng.standard_normal((n, d))
        cases.append((dout, x, gamma, eps))
    return cases


#: (keyword arguments of variant_backward, what the reader is told)
MISTAKES = [
    (dict(detached=True),
     "Your dx is gamma * dout / sqrt(var + eps): it treats the batch mean and variance as "
     "constants (detached statistics). Both depend on every x_i, so dx needs the two extra "
     "terms: dx = gamma / (N * std) * (N * dout - dbeta - x_hat * dgamma)."),
    (dict(mean_term=False),
     "The term from the path through the mean is missing: dx should contain -sum(dout) (= -dbeta). "
     "Symptom: sum(dx) over the batch is not 0, yet shifting every x_i by the same amount "
     "changes nothing, so it must be."),
    (dict(var_term=False),
     "The term from the path through the variance is missing: dx should contain "
     "-x_hat * dgamma (with dgamma = sum(dout * x_hat)). This is the popular formula that drops "
     "dvar's contribution to dx; a gradient check with a random dout catches it."),
    (dict(ddof=1),
     "Your variance divides by N - 1 (unbiased). Batch normalization in training uses the "
     "biased batch variance, mean((x - mu)**2), dividing by N (np.var's default ddof=0)."),
    (dict(use_eps=0.0),
     "eps is missing: the standard deviation is sqrt(var + eps), not sqrt(var). It matters for "
     "features whose variance is near eps (one hidden case has one)."),
    (dict(use_eps=1e-5),
     "Your function ignores its eps argument (it uses 1e-5 whatever eps is): use the eps passed in."),
    (dict(divide_by_n=False),
     "Your dx is N times too large: the closed form is gamma / (N * std) * (N * dout - dbeta - "
     "x_hat * dgamma); the 1/N in front is missing."),
    (dict(with_gamma=False),
     "gamma is missing from dx: the upstream gradient reaches x_hat multiplied by gamma "
     "(dL/dx_hat = gamma * dout)."),
    (dict(normalized_dgamma=False),
     "dgamma uses x - mu instead of x_hat: out = gamma * x_hat + beta, so dgamma = "
     "sum(dout * x_hat), with the normalized input."),
]


def _close(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=1e-9 * max(1.0, np.abs(b).max())))


def _shape_message(name, shape, n, d) -> str | None:
    """What is wrong with the shape of one returned gradient, or None."""
    expected = (n, d) if name == "dx" else (d,)
    if shape == expected:
        return None
    if name != "dx" and shape == (n, d):
        return (f"{name} has shape {shape}, one value per example: gamma and beta are shared by "
                f"all N examples, so their gradients are sums over the batch, "
                f"e.g. dbeta = dout.sum(axis=0), shape ({d},).")
    if name != "dx" and shape == (1, d):
        return f"{name} has shape {shape}: drop keepdims=True, the expected shape is ({d},)."
    if name != "dx" and shape == (n,):
        return (f"{name} has shape {shape}: it is summed over the features (axis=1); "
                f"sum over the batch, axis=0, for shape ({d},).")
    return f"{name} has shape {shape}; expected {expected}."


def check_batchnorm_backward(function) -> Feedback:
    """Run the reader's my_batchnorm_backward(dout, x, gamma, eps) on hidden cases.

    Returns:
        Feedback: passed, or messages naming the mistake (see MISTAKES), or "not attempted".
    """
    feedback = Feedback(EXERCISE)
    cases = hidden_cases()
    answers = []
    for dout, x, gamma, eps in cases:
        try:
            returned = call_reader_function(function, dout.copy(), x.copy(), gamma.copy(), eps)
        except NotAttempted:
            feedback.attempted = False
            feedback.add("When you are ready: compute the batch statistics from x, then dx, "
                         "dgamma and dbeta in closed form. The notebook runs on either way.")
            return feedback
        except Exception as error:  # the reader's code failed: say how, without a traceback
            feedback.add(f"Your function raised {type(error).__name__}: {error} "
                         f"(on a batch x of shape {x.shape}).")
            return feedback
        if not isinstance(returned, (tuple, list)) or len(returned) != 3:
            feedback.add("Return three arrays, in this order: dx, dgamma, dbeta.")
            return feedback
        answers.append(tuple(np.asarray(a, dtype=np.float64) for a in returned))

    # 1. shapes
    for (_, x, _, _), answer in zip(cases, answers):
        n, d = x.shape
        messages = [m for name, a in zip(("dx", "dgamma", "dbeta"), answer)
                    if (m := _shape_message(name, a.shape, n, d))]
        if messages:
            for message in messages:
                feedback.add(message)
            return feedback

    references = [reference_backward(*case) for case in cases]
    if all(_close(a, r) for answer, ref in zip(answers, references) for a, r in zip(answer, ref)):
        feedback.passed = True
        feedback.add(f"dx, dgamma and dbeta agree with helpers.bn on all {len(cases)} hidden cases, "
                     "including a feature with variance below eps and a batch of 4.")
        return feedback

    # 2. dgamma and dbeta swapped
    if all(_close(answer[1], ref[2]) and _close(answer[2], ref[1])
           for answer, ref in zip(answers, references)):
        feedback.add("dgamma and dbeta are swapped: dbeta = sum(dout) (beta is added), "
                     "dgamma = sum(dout * x_hat) (gamma multiplies x_hat). Return dx, dgamma, dbeta.")
        return feedback

    # 3. a known mistake, matched exactly on every hidden case (every returned gradient)
    for keywords, message in MISTAKES:
        variants = [variant_backward(*case, **keywords) for case in cases]
        if all(_close(a, v) for answer, variant in zip(answers, variants)
               for a, v in zip(answer, variant)):
            feedback.add(message)
            return feedback

    # 4. no exact match: say which gradients are wrong, with the properties that help find it
    for name, index in (("dbeta", 2), ("dgamma", 1)):
        if not all(_close(answer[index], ref[index]) for answer, ref in zip(answers, references)):
            if all(_close(answer[index] * case[1].shape[0], ref[index])
                   for answer, ref, case in zip(answers, references, cases)):
                feedback.add(f"{name} is the mean over the batch; it should be the sum.")
            else:
                formula = "sum(dout, axis=0)" if name == "dbeta" else "sum(dout * x_hat, axis=0)"
                feedback.add(f"{name} is wrong: it should be {formula}.")
    for (_, x, _, _), answer, ref in zip(cases, answers, references):
        dx = answer[0]
        if _close(dx, ref[0]):
            continue
        worst_sum = np.abs(dx.sum(axis=0)).max()
        if worst_sum > 1e-8 * max(1.0, np.abs(dx).max()):
            feedback.add(f"sum(dx) over the batch should be 0 for every feature (shifting the whole "
                         f"batch changes nothing); yours reaches {worst_sum:.2e}: check the term "
                         f"from the path through the mean.")
        ratio = dx / np.where(ref[0] == 0, np.nan, ref[0])
        if np.nanmax(ratio) - np.nanmin(ratio) < 1e-6 * max(1.0, np.nanmax(np.abs(ratio))):
            feedback.add(f"dx is the right answer times {np.nanmean(ratio):.4g}: a constant factor "
                         f"is wrong or missing.")
        feedback.add(f"dx differs from the reference by up to {np.abs(dx - ref[0]).max():.2e} "
                     f"on a hidden batch of shape {x.shape} (largest |dx| is {np.abs(ref[0]).max():.2e}).")
        break
    if not feedback.messages:
        feedback.add("Some results differ from the reference; compare with the closed form above.")
    return feedback
