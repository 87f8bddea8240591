"""Exercise checkers for notebook 09 (BN across processes).

- ``check_merge``: merge the (count, mean, M2) of two parts of the data (Chan, Golub &
  LeVeque 1979), what synchronized BN does with the statistics of every process.
- ``check_shard_backward``: one process's input gradient, given the two sums that the
  backward pass all-reduces.

Each runs the reader's function on hidden cases, compares with the reference
(``helpers.parallel_variance`` and ``helpers.bn``), and when the answer is wrong tries the
usual mistakes one by one to say which one it is.
"""

from __future__ import annotations

import numpy as np

from helpers.bn import batchnorm_backward_compact, batchnorm_forward
from helpers.feedback import Feedback, NotAttempted, call_reader_function
from helpers.i18n import N_, _
from helpers.parallel_variance import Moments, merge, moments

__all__ = ["check_merge", "check_shard_backward"]

RTOL, ATOL = 1e-9, 1e-12


def _close(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=RTOL, atol=ATOL)


def _dedupe_into(feedback, found):
    for message in dict.fromkeys(found):
        feedback.add(message)
    feedback.passed = not found
    return feedback


# ----------------------------------------------------------------------------------------
# Exercise 1: the merge of two parts
# ----------------------------------------------------------------------------------------


def _merge_cases():
    """(label, part_a, part_b): pairs of Moments of real data with unequal counts, an empty
    part, and a part whose mean is huge compared with its spread."""
    rng = np.random.default_rng(1979)
    cases = []
    for label, n_a, n_b, loc, scale in [(N_("23 and 41 values"), 23, 41, 2.0, 1.5),
                                        (N_("1 and 9 values"), 1, 9, -1.0, 3.0),
                                        (N_("an empty part (count 0) and 12 values"), 0, 12, 0.5, 1.0),
                                        (N_("7 and 5 values with mean 1e8 and spread 1"), 7, 5, 1e8, 1.0)]:
        shift = rng.uniform(-2, 2, 3)
        a = rng.normal(loc, scale, size=(n_a, 3))
        b = rng.normal(loc, scale, size=(n_b, 3)) + shift * scale
        cases.append((label, moments(a), moments(b)))
    return cases


def _merge_variant(a, b, *, plain_mean=False, no_between=False, between_no_division=False,
                   swapped_weight=False, variance=False, through_sums=False):
    """The merge with one of the usual mistakes (flags), or the correct one (no flags)."""
    n = a.count + b.count
    delta = b.mean - a.mean
    if through_sums:  # sum of squares about 0, then the shortcut: cancels for a large mean
        total = a.count * a.mean + b.count * b.mean
        squares = a.m2 + a.count * a.mean ** 2 + b.m2 + b.count * b.mean ** 2
        return n, total / n, squares - total ** 2 / n
    if plain_mean:
        mean = (a.mean + b.mean) / 2
    elif swapped_weight:
        mean = a.mean + delta * (a.count / n)
    else:
        mean = a.mean + delta * (b.count / n)
    between = delta ** 2 * a.count * b.count * (1.0 if between_no_division else 1.0 / n)
    m2 = a.m2 + b.m2 + (0.0 if no_between else between)
    if variance:
        return n, mean, m2 / n
    return n, mean, m2


_MERGE_MISTAKES = [
    (dict(through_sums=True),
     N_("you go through sums of squares (sum x^2 - (sum x)^2 / n). That is the one-pass shortcut: "
        "with a mean of 1e8 and a spread of 1 the two terms agree in their first 16 digits and "
        "their difference is rounding noise. Merge the M2s directly: m2_a + m2_b + delta^2 * n_a * "
        "n_b / n.")),
    (dict(plain_mean=True),
     N_("the merged mean is the plain average of the two means. With unequal counts it must be "
        "weighted by them: mean_a + delta * n_b / n, i.e. (n_a mean_a + n_b mean_b) / n.")),
    (dict(no_between=True),
     N_("m2_a + m2_b misses the spread BETWEEN the parts: each part's M2 is measured about its own "
        "mean, so add delta^2 * n_a * n_b / n, delta = mean_b - mean_a.")),
    (dict(between_no_division=True),
     N_("the between-parts term is delta^2 * n_a * n_b / n: you left out the division by n = n_a + n_b.")),
    (dict(swapped_weight=True),
     N_("the weights of the mean are swapped: moving from mean_a towards mean_b by delta * n_a / n "
        "gives the larger part the smaller say. It is mean_a + delta * n_b / n.")),
    (dict(variance=True),
     N_("you returned the variance (M2 / n) as the third value. Return M2 itself, the sum of "
        "squared deviations: that is what merges again with the next part.")),
]


def _as_moments(result, shape):
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        return None, _("return (count, mean, m2), three values; got {value}.").format(value=type(result).__name__)
    count, mean, m2 = result
    try:
        count = float(count)
        mean, m2 = np.asarray(mean, dtype=np.float64), np.asarray(m2, dtype=np.float64)
    except (TypeError, ValueError):
        return None, _("count should be a number and mean and m2 arrays of numbers.")
    if mean.shape != shape or m2.shape != shape:
        return None, _("mean and m2 should have shape {shape}, got {shape2} and {shape3}.").format(
            shape=shape, shape2=mean.shape, shape3=m2.shape)
    return Moments(count, mean, m2), None


def check_merge(function) -> Feedback:
    """Check ``function(a, b) -> (count, mean, m2)``, a and b each a (count, mean, m2) tuple
    of one part (count a number, mean and m2 arrays (D,))."""
    feedback = Feedback(_("merging (count, mean, M2) of two parts"))
    found = []
    for label, a, b in _merge_cases():
        shown = _(label)
        copies = [np.copy(a.mean), np.copy(a.m2), np.copy(b.mean), np.copy(b.m2)]
        try:
            result = call_reader_function(function, a, b)
        except NotAttempted:
            feedback.attempted = False
            return feedback
        except Exception as error:
            message = _("your function raised {value}: {error} (parts of {label}).").format(
                value=type(error).__name__, error=error, label=shown)
            if a.count == 0:
                message += _(" A part can be empty: a process that got no examples still takes part, "
                             "with count 0. Divide only by n = n_a + n_b.")
            found.append(message)
            break
        if any(not np.array_equal(before, after) for before, after in
               zip(copies, [a.mean, a.m2, b.mean, b.m2])):
            found.append(_("your function changed one of the parts in place; return new arrays."))
            break
        merged, problem = _as_moments(result, np.shape(a.mean))
        if problem:
            found.append(problem)
            break
        expected = merge(a, b)
        if merged.count != expected.count:
            found.append(_("the count should be n_a + n_b = {count:g}, got {value:g}.").format(
                count=expected.count, value=merged.count))
            break
        if _close(merged.mean, expected.mean) and _close(merged.m2, expected.m2):
            continue
        for flags, message in _MERGE_MISTAKES:
            _count, mean, m2 = _merge_variant(a, b, **flags)
            if _close(merged.mean, mean) and _close(merged.m2, m2):
                found.append(_(message))
                break
        else:
            if a.count == 0 and not (np.all(np.isfinite(merged.mean)) and np.all(np.isfinite(merged.m2))):
                found.append(_("with an empty part (count 0) your merge gives NaN or inf: divide only "
                               "by n = n_a + n_b, which is not 0 here."))
            elif _close(merged.mean, expected.mean) and "1e8" in label:
                found.append(_(_MERGE_MISTAKES[0][1]))  # the shortcut, rounded in another order
            elif _close(merged.mean, expected.mean):
                found.append(_("the mean is right, M2 is not (parts of {label}): it is m2_a + m2_b + "
                               "delta^2 * n_a * n_b / n.").format(label=shown))
            elif _close(merged.m2, expected.m2):
                found.append(_("M2 is right, the mean is not (parts of {label}): mean_a + delta * n_b / n.").format(
                    label=shown))
            else:
                found.append(_("neither the mean nor M2 matches (parts of {label}).").format(label=shown))
        break
    return _dedupe_into(feedback, found)


# ----------------------------------------------------------------------------------------
# Exercise 2: one process's input gradient
# ----------------------------------------------------------------------------------------


def _backward_cases():
    """(label, x, dy, gamma, shards): a global batch (N, C), its upstream gradient, gamma,
    and the shard sizes it is split into."""
    rng = np.random.default_rng(2018)
    cases = []
    for label, shards, channels in [(_("shards of 5 and 11"), (5, 11), 3),
                                    (_("shards of 2, 9 and 21"), (2, 9, 21), 4),
                                    (_("shards of 1 and 6"), (1, 6), 2)]:
        n = sum(shards)
        x = rng.normal(rng.uniform(-2, 2, channels), rng.uniform(0.5, 3, channels), size=(n, channels))
        cases.append((label, x, rng.normal(size=(n, channels)), rng.uniform(0.5, 2.0, channels), shards))
    return cases


def _backward_variant(dy, x_hat, gamma, invstd, sum_dy, sum_dy_x_hat, count, *, local_count=False,
                      local_sums=False, no_gamma=False, no_invstd=False, plus=False, no_mean=False):
    n = len(dy) if local_count else count
    if local_sums:
        sum_dy, sum_dy_x_hat = dy.sum(axis=0), (dy * x_hat).sum(axis=0)
    scale = (1.0 if no_gamma else gamma) * (1.0 if no_invstd else invstd)
    mean_term = 0.0 if no_mean else sum_dy / n
    sign = 1.0 if plus else -1.0
    return scale * (dy - mean_term + sign * x_hat * sum_dy_x_hat / n)


_BACKWARD_MISTAKES = [
    (dict(local_sums=True),
     N_("you use this process's own sums of dy and dy * x_hat. The gradient couples every example of "
        "the GLOBAL batch: use the all-reduced sum_dy and sum_dy_x_hat you are given.")),
    (dict(local_count=True),
     N_("you divide the sums by this process's number of examples. The sums are over the whole "
        "batch, so divide by total_count, the global N.")),
    (dict(local_sums=True, local_count=True),
     N_("this is plain per-process BN's gradient: local sums divided by the local count. Use the "
        "all-reduced sums and the global count total_count.")),
    (dict(no_gamma=True),
     N_("gamma is missing: y = gamma * x_hat + beta, so dx carries the factor gamma / sqrt(var + eps).")),
    (dict(no_invstd=True),
     N_("the factor 1 / sqrt(var + eps) (invstd) is missing: x_hat = (x - mean) * invstd.")),
    (dict(plus=True),
     N_("the sign of the x_hat term: dx = gamma * invstd * (dy - sum_dy / N - x_hat * sum_dy_x_hat / N).")),
    (dict(no_mean=True),
     N_("the mean term is missing: subtract sum_dy / N (the gradient through the batch mean).")),
]


def check_shard_backward(function) -> Feedback:
    """Check ``function(dy, x_hat, gamma, invstd, sum_dy, sum_dy_x_hat, total_count) -> dx``:
    dy and x_hat (n, C) this process's rows; gamma, invstd, sum_dy, sum_dy_x_hat (C,), the last
    two summed over every process; total_count the global N. The answer must equal the rows
    of the gradient of BN on the whole batch."""
    feedback = Feedback(_("one process's input gradient in synchronized BN"))
    found = []
    for label, x, dy, gamma, shards in _backward_cases():
        out, cache = batchnorm_forward(x, gamma, np.zeros_like(gamma))
        dx_global = batchnorm_backward_compact(dy, cache)[0]
        x_hat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
        invstd = 1.0 / np.sqrt(x.var(axis=0) + 1e-5)
        sum_dy, sum_dy_x_hat = dy.sum(axis=0), (dy * x_hat).sum(axis=0)
        edges = np.cumsum([0, *shards])
        wrong = None
        for start, stop in zip(edges[:-1], edges[1:]):
            rows = slice(start, stop)
            arguments = (dy[rows].copy(), x_hat[rows].copy(), gamma.copy(), invstd.copy(),
                         sum_dy.copy(), sum_dy_x_hat.copy(), len(x))
            try:
                result = call_reader_function(function, *arguments)
            except NotAttempted:
                feedback.attempted = False
                return feedback
            except Exception as error:
                wrong = _("your function raised {value}: {error} ({where}).").format(
                    value=type(error).__name__, error=error, where=label)
                break
            try:
                dx = np.asarray(result, dtype=np.float64)
            except (TypeError, ValueError):
                wrong = _("return dx, an array of numbers.")
                break
            if dx.shape != dy[rows].shape:
                wrong = _("dx should have the shape of dy, {shape}; got {shape2} ({label}).").format(
                    shape=dy[rows].shape, shape2=dx.shape, label=label)
                break
            if _close(dx, dx_global[rows]):
                continue
            for flags, message in _BACKWARD_MISTAKES:
                if _close(dx, _backward_variant(*arguments, **flags)):
                    wrong = _(message)
                    break
            else:
                wrong = _("dx does not match the rows of BN's gradient on the whole batch ({label}, "
                          "the shard of {size}).").format(label=label, size=stop - start)
            break
        if wrong:
            found.append(wrong)
            break
    return _dedupe_into(feedback, found)
