"""Exercise checkers of notebook 07 (why does batch normalization work?).

- ``check_group_statistics(fn)``: the reader's ``fn(x, num_groups) -> (mean, var)``, GroupNorm's
  per-example, per-group statistics, each (N, G).
- ``check_gradient_walk(fn)``: the reader's ``fn(loss_and_gradient, w, step_sizes) ->
  (losses, gradient_changes)``, the probe of Santurkar et al.'s Figure 4.
- ``check_small_batch_prediction(answer)``: which normalizations lose accuracy when each
  statistic is computed over 2 examples.

The first two run the reader's function on hidden cases, compare with
``helpers.lessons.why_bn_works`` (``group_statistics``, ``probe_along_gradient``), and when the
answer is wrong try the usual mistakes to say which one it is.
"""

from __future__ import annotations

import numpy as np

from helpers.feedback import (
    LOW_PRECISION,
    Feedback,
    NotAttempted,
    call_reader_function,
    low_precision_message,
    precision_of,
)
from helpers.i18n import N_, _
from helpers.lessons.why_bn_works import group_statistics, probe_along_gradient

__all__ = ["check_gradient_walk", "check_group_statistics", "check_small_batch_prediction"]


def _as_array(value):
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


#: The checkers compare in float64 to this relative tolerance.
RTOL, ATOL = 1e-9, 1e-12


def _precision_verdict(result, pairs):
    """(message or None, tolerance for matching mistakes): the float32 message for an answer
    whose (got, expected) arrays differ by about what its precision allows (None if they differ
    by more: the answer is wrong for another reason), and how closely a mistake computed in
    float64 must match it."""
    precision = precision_of(result)
    error = max(float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-300))
                for got, expected in pairs)   # relative to the largest value
    loose = RTOL if precision is None else 1e3 * LOW_PRECISION[precision]
    if precision is not None and error > loose:
        return None, loose
    return low_precision_message(precision, error, RTOL), loose


def _close(a, b, tolerance=RTOL) -> bool:
    """Equal to the checker's tolerance, or (a looser one, for an answer in float32) to
    ``tolerance`` relative to the largest value."""
    if tolerance == RTOL:
        return bool(np.allclose(a, b, rtol=RTOL, atol=ATOL))
    return bool(np.shape(a) == np.shape(b) and np.abs(a - b).max() <= tolerance * np.abs(b).max())


def _pair(result, what: str, feedback: Feedback):
    """The reader's (a, b) as two float64 arrays, or None with a message."""
    if result is None:
        feedback.add(_("Your function returned None: did you forget the `return` statement?"))
        return None
    if not (isinstance(result, tuple | list) and len(result) == 2):
        feedback.add(_("Return two arrays, {what}.").format(what=what))
        return None
    try:
        return tuple(_as_array(value) for value in result)
    except (TypeError, ValueError):
        feedback.add(_("Return two numeric arrays, {what}.").format(what=what))
        return None


# ----------------------------------------------------------------------------------------
# GroupNorm's statistics
# ----------------------------------------------------------------------------------------


def _group_cases():
    rng = np.random.default_rng(2018)
    # channels get different offsets and spreads, so that every wrong grouping shows
    offsets = np.array([0.0, 3.0, -2.0, 5.0, 1.0, -4.0])[None, :, None, None]
    spreads = np.array([1.0, 0.5, 2.0, 0.2, 3.0, 1.5])[None, :, None, None]
    yield _("x of shape (5, 6, 4, 3) with 3 groups"), offsets + spreads * rng.normal(size=(5, 6, 4, 3)), 3
    yield _("x of shape (4, 6, 2, 2) with 2 groups"), offsets + spreads * rng.normal(size=(4, 6, 2, 2)), 2
    yield _("x of shape (3, 8) (a fully connected layer) with 4 groups"), \
        rng.normal(size=(3, 8)) * np.arange(1, 9) + np.arange(8), 4
    yield _("x of shape (2, 6, 3, 3) with 1 group (LayerNorm)"), offsets + spreads * rng.normal(size=(2, 6, 3, 3)), 1
    yield _("x of shape (2, 6, 3, 3) with 6 groups (InstanceNorm)"), offsets + spreads * rng.normal(size=(2, 6, 3, 3)), 6


def _interleaved(x, g):
    n, c = x.shape[:2]
    grouped = x.reshape(n, c // g, g, -1).transpose(0, 2, 1, 3).reshape(n, g, -1)
    return grouped.mean(axis=2), grouped.var(axis=2)


def _with_batch(x, g):
    n = x.shape[0]
    grouped = x.reshape(n, g, -1).transpose(1, 0, 2).reshape(g, -1)
    mean, var = grouped.mean(axis=1), grouped.var(axis=1)
    return np.tile(mean, (n, 1)), np.tile(var, (n, 1))


def _unbiased(x, g):
    grouped = x.reshape(x.shape[0], g, -1)
    return grouped.mean(axis=2), grouped.var(axis=2, ddof=1)


def _std(x, g):
    mean, var = group_statistics(x, g)
    return mean, np.sqrt(var)


_GROUP_MISTAKES = [
    (_interleaved,
     N_("Your groups interleave the channels (channel c in group c % G). GroupNorm's groups are "
        "blocks of consecutive channels: group g holds channels g*C/G ... (g+1)*C/G - 1, which is "
        "what x.reshape(N, G, -1) gives.")),
    (_with_batch,
     N_("Your statistics average over the batch too, so every example gets the same numbers: that "
        "is a batch statistic. GroupNorm's statistics belong to one example: average over the "
        "group's channels and the positions only (axis 2 of x.reshape(N, G, -1)).")),
    (_unbiased,
     N_("Your variance divides by n - 1 (ddof=1). Normalization uses the biased variance: divide "
        "by the number of values (np.var's default).")),
    (_std,
     N_("Your second array is the standard deviation; return the variance (GroupNorm divides by "
        "sqrt(var + eps) later).")),
    (lambda x, g: group_statistics(x, g)[::-1],
     N_("Your two arrays are in the wrong order: return (mean, var).")),
]


def _shape_hint(shape, n, c, g) -> str:
    if shape == (g,):
        return _("one value per group for the whole batch: you averaged over the examples too. "
                 "GroupNorm computes statistics per example: the result is (N, G).")
    if shape == (n, c):
        return _("one value per channel: that is InstanceNorm's statistic (each channel alone). "
                 "Average over the C/G channels of each group as well: the result is (N, G).")
    if len(shape) > 2 and shape[:2] == (n, g):
        return _("you averaged over the group's channels but not over the positions (H, W). "
                 "Average over both: x.reshape(N, G, -1).mean(axis=2).")
    return _("expected (N, G) = ({n}, {g}).").format(n=n, g=g)


def check_group_statistics(reader_function) -> Feedback:
    """Check ``reader_function(x, num_groups) -> (mean, var)`` against
    ``helpers.lessons.why_bn_works.group_statistics`` on hidden (N, C, H, W) and (N, C) inputs."""
    feedback = Feedback(_("GroupNorm's statistics, my_group_statistics"))
    for description, x, g in _group_cases():
        n, c = x.shape[:2]
        original = x.copy()
        try:
            result = call_reader_function(reader_function, x, g)
        except NotAttempted:
            return Feedback(feedback.exercise, passed=False, attempted=False)
        except Exception as error:  # the reader's bug, reported instead of raised
            feedback.add(_("On {description}, your function raised {value}: {error}.").format(description=description, value=type(error).__name__, error=error))
            return feedback
        if not np.array_equal(x, original):
            feedback.add(_("Your function changed its input x in place; compute new arrays instead."))
            return feedback
        pair = _pair(result, _("(mean, var), each of shape (N, G)"), feedback)
        if pair is None:
            return feedback
        mean, var = pair
        for name, value in (("mean", mean), ("var", var)):
            if value.shape != (n, g):
                feedback.add(_("On {description}, your {name} has shape {shape}: {hint}").format(
                    description=description, name=name, shape=value.shape, hint=_shape_hint(value.shape, n, c, g)))
                return feedback
        expected_mean, expected_var = group_statistics(x, g)
        if _close(mean, expected_mean) and _close(var, expected_var):
            continue
        note, loose = _precision_verdict(result, [(mean, expected_mean), (var, expected_var)])
        if note and precision_of(result) is not None:   # a float64 answer: the usual mistakes first
            feedback.add(_("On {description}: {note}").format(description=description, note=note))
            return feedback
        for mistake, explanation in _GROUP_MISTAKES:
            candidate_mean, candidate_var = mistake(x, g)
            if _close(mean, candidate_mean, loose) and _close(var, candidate_var, loose):
                feedback.add(_("On {description}: {explanation}").format(description=description, explanation=_(explanation)))
                return feedback
        if note:
            feedback.add(_("On {description}: {note}").format(description=description, note=note))
            return feedback
        which = [name for name, ok in (("mean", _close(mean, expected_mean)),
                                        ("var", _close(var, expected_var))) if not ok]
        feedback.add(_("On {description}, your {value} differ from the reference "
                     "(largest difference {value2:.3g}).").format(description=description, value=_(" and ").join(which), value2=max(np.abs(mean - expected_mean).max(), np.abs(var - expected_var).max())))
        return feedback
    feedback.passed = True
    feedback.add(_("Your statistics match GroupNorm's on every hidden case, including G = 1 "
                 "(LayerNorm: one statistic per example) and G = C (InstanceNorm: one per channel)."))
    return feedback


# ----------------------------------------------------------------------------------------
# The walk along the gradient
# ----------------------------------------------------------------------------------------


def _quadratic():
    rng = np.random.default_rng(4)
    q = rng.normal(size=(5, 5))
    a = q @ q.T + 0.5 * np.eye(5)
    b = rng.normal(size=5)

    def loss_and_gradient(w):
        return float(0.5 * w @ a @ w + b @ w), a @ w + b

    return _("a quadratic in 5 variables"), loss_and_gradient, rng.normal(size=5), np.array([0.01, 0.05, 0.1, 0.3])


def _softplus_matrix():
    rng = np.random.default_rng(5)
    inputs = rng.normal(size=(20, 3))

    def loss_and_gradient(w):  # w (2, 3): a small two-output logistic-like loss
        z = inputs @ w.T  # (20, 2)
        loss = float(np.mean(np.logaddexp(0.0, z)) + 0.5 * np.sum(w ** 3 * np.sign(w)) / 3)
        gradient = (1 / (1 + np.exp(-z))).T @ inputs / z.size + 0.5 * w ** 2 * np.sign(w)
        return loss, gradient

    return _("a non-quadratic loss of a (2, 3) weight matrix"), loss_and_gradient, \
        rng.normal(size=(2, 3)), np.array([0.2, 0.5, 1.0, 2.0])


def _walk_variant(direction="gradient", change="norm of difference", loss="loss"):
    def walk(loss_and_gradient, w, step_sizes):
        loss0, g = loss_and_gradient(w)
        d = g / np.linalg.norm(g) if direction == "unit" else g
        sign = 1.0 if direction == "uphill" else -1.0
        losses, changes = [], []
        for eta in step_sizes:
            value, g_eta = loss_and_gradient(w + sign * eta * d)
            losses.append(value - loss0 if loss == "difference" else value)
            if change == "difference of norms":
                changes.append(abs(np.linalg.norm(g_eta) - np.linalg.norm(g)))
            elif change == "squared":
                changes.append(np.sum((g_eta - g) ** 2))
            elif change == "relative":
                changes.append(np.linalg.norm(g_eta - g) / np.linalg.norm(g))
            else:
                changes.append(np.linalg.norm(g_eta - g))
        return np.array(losses), np.array(changes)

    return walk


_WALK_MISTAKES = [
    (_walk_variant(direction="uphill"),
     N_("You step along +gradient (uphill). Gradient descent, and the probe, move to w - eta * g.")),
    (_walk_variant(direction="unit"),
     N_("You step along the unit vector g / ||g||. The probe moves by eta times the gradient itself, "
        "w - eta * g, as an SGD step of learning rate eta would.")),
    (_walk_variant(change="difference of norms"),
     N_("Your gradient change is | ||g'|| - ||g|| |, the change of the gradient's length. Measure the "
        "length of the difference, ||g' - g||: a gradient that turns without growing has changed too.")),
    (_walk_variant(change="squared"),
     N_("Your gradient change is the squared norm ||g' - g||^2; take the square root (np.linalg.norm).")),
    (_walk_variant(change="relative"),
     N_("Your gradient change is divided by ||g||. The exercise asks for the change itself, ||g' - g||.")),
    (_walk_variant(loss="difference"),
     N_("Your losses are L(w - eta g) - L(w), differences from the start. Return the losses themselves.")),
]


def check_gradient_walk(reader_function) -> Feedback:
    """Check ``reader_function(loss_and_gradient, w, step_sizes) -> (losses, gradient_changes)``
    against ``helpers.lessons.why_bn_works.probe_along_gradient`` on hidden losses."""
    feedback = Feedback(_("the walk along the gradient, my_gradient_walk"))
    for description, loss_and_gradient, w, step_sizes in (_quadratic(), _softplus_matrix()):
        original = w.copy()
        try:
            result = call_reader_function(reader_function, loss_and_gradient, w, step_sizes.copy())
        except NotAttempted:
            return Feedback(feedback.exercise, passed=False, attempted=False)
        except Exception as error:
            feedback.add(_("On {description}, your function raised {value}: {error}.").format(description=description, value=type(error).__name__, error=error))
            return feedback
        if not np.array_equal(w, original):
            feedback.add(_("Your function changed w in place (w -= ...). Compute w - eta * g as a new "
                         "array for every step size: each step starts from the same w."))
            return feedback
        pair = _pair(result, _("(losses, gradient_changes), one value per step size"), feedback)
        if pair is None:
            return feedback
        losses, changes = pair
        if losses.shape != step_sizes.shape or changes.shape != step_sizes.shape:
            feedback.add(_("On {description}, return one loss and one gradient change per step size: "
                         "shapes {shape}; yours are {shape2} and {shape3}.").format(description=description, shape=step_sizes.shape, shape2=losses.shape, shape3=changes.shape))
            return feedback
        reference = probe_along_gradient(loss_and_gradient, w, step_sizes)
        if _close(losses, reference.losses) and _close(changes, reference.grad_changes):
            continue
        note, loose = _precision_verdict(result, [(losses, reference.losses),
                                                  (changes, reference.grad_changes)])
        if note and precision_of(result) is not None:   # a float64 answer: the usual mistakes first
            feedback.add(_("On {description}: {note}").format(description=description, note=note))
            return feedback
        for mistake, explanation in _WALK_MISTAKES:
            candidate_losses, candidate_changes = mistake(loss_and_gradient, w, step_sizes)
            loss_ok = _close(losses, candidate_losses, loose)
            change_ok = _close(changes, candidate_changes, loose)
            if loss_ok and change_ok:
                feedback.add(_("On {description}: {explanation}").format(description=description, explanation=_(explanation)))
                return feedback
            right_losses = _close(losses, reference.losses, loose)
            if right_losses and change_ok:  # losses right, only the gradient change is off
                feedback.add(_("On {description}: your losses are right. {explanation}").format(description=description, explanation=_(explanation)))
                return feedback
        if note:
            feedback.add(_("On {description}: {note}").format(description=description, note=note))
            return feedback
        parts = []
        if not np.allclose(losses, reference.losses, rtol=1e-9, atol=1e-12):
            parts.append(_("losses {value} (expected {expected})").format(
                value=np.round(losses, 5), expected=np.round(reference.losses, 5)))
        if not np.allclose(changes, reference.grad_changes, rtol=1e-9, atol=1e-12):
            parts.append(_("gradient changes {value} "
                           "(expected {expected})").format(value=np.round(changes, 5),
                                                           expected=np.round(reference.grad_changes, 5)))
        feedback.add(_("On {description}, your {parts}.").format(description=description,
                                                                 parts=_(" and ").join(parts)))
        return feedback
    feedback.passed = True
    feedback.add(_("Your walk matches helpers.lessons.why_bn_works.probe_along_gradient, on a quadratic "
                 "and on a non-quadratic loss of a matrix."))
    return feedback


# ----------------------------------------------------------------------------------------
# A prediction
# ----------------------------------------------------------------------------------------

_NAMES = {"batch": "batch", "bn": "batch", "batchnorm": "batch", "group": "group", "gn": "group",
          "groupnorm": "group", "layer": "layer", "ln": "layer", "layernorm": "layer"}


def check_small_batch_prediction(answer) -> Feedback:
    """``answer``: the normalizations ("batch", "group", "layer") whose accuracy drops when their
    statistics come from 2 examples instead of 32, in the Figure 1 MLP with the same SGD steps.
    None (or an empty answer) means not attempted."""
    feedback = Feedback(_("which normalization suffers from batches of 2"), to_fill="my_prediction",
                        when_correct=N_("your prediction is right"))
    if answer is None or (not isinstance(answer, str) and len(answer) == 0):
        feedback.attempted = False
        return feedback
    items = [answer] if isinstance(answer, str) else list(answer)
    chosen = set()
    for item in items:
        key = str(item).strip().lower().replace(" ", "").replace("_", "")
        if key not in _NAMES:
            feedback.add(_("{item!r} is not one of 'batch', 'group', 'layer'.").format(item=item))
            return feedback
        chosen.add(_NAMES[key])
    if "batch" not in chosen:
        feedback.add(_("BatchNorm is hurt: with 2 examples each unit's mean and variance come from "
                     "2 numbers, so every normalized value is about +1 or -1 (which of the two "
                     "examples is larger), and the statistics jump from batch to batch."))
    for other in sorted(chosen - {"batch"}):
        name = "GroupNorm" if other == "group" else "LayerNorm"
        feedback.add(_("{name} is not hurt: it computes its statistics inside each example, over "
                     "units (and positions), so the other examples in the batch never enter. "
                     "Its computation is the same whatever the batch size.").format(name=name))
    if chosen == {"batch"}:
        feedback.passed = True
        feedback.add(_("Only BatchNorm: its statistics are the only ones computed across examples. "
                     "GroupNorm and LayerNorm give the same numbers at any batch size."))
    return feedback
