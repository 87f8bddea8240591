"""Exercise checkers for notebook 05 (convolutional BN and other choices of axes).

- ``check_spatial_batchnorm_forward(fn)``: fn(x, gamma, beta, eps=1e-5) -> out, BN for
  (N, C, H, W) maps built from the 2-D version by transposing and reshaping.
- ``check_normalization_axes(fn)``: fn() -> {"batch": axes, "layer": ..., "instance": ...,
  "group": ...}: which axes each normalization averages over.
- ``check_group_norm(fn)``: fn(x, num_groups, eps=1e-5) -> out, group normalization without
  scale and shift.

Each checker runs hidden cases, compares with the references in ``helpers.bn`` and
``helpers.norms``, and recognises the usual mistakes by computing them too: a reshape
without the transpose, statistics per (c, h, w) or per sample, the wrong output layout, the
unbiased variance, a missing eps... Any other choice of axes is named: which axes the answer
averages over and what it keeps one statistic per. An answer computed in float32 is told so,
with the checker's tolerance (1e-8, in float64).
"""

from __future__ import annotations

import numpy as np

from helpers.bn import batchnorm_forward, spatial_batchnorm_forward
from helpers.feedback import (
    LOW_PRECISION,
    Feedback,
    NotAttempted,
    call_reader_function,
    low_precision_message,
    precision_of,
)
from helpers.i18n import N_, _
from helpers.norms import group_normalize, normalize

__all__ = ["check_group_norm", "check_normalization_axes", "check_spatial_batchnorm_forward"]

TOLERANCE = 1e-8


def _feature_map_case(rng, shape, small_variance_channel=True):
    """x (N, C, H, W) whose channels have clearly different means and spreads, so that
    mixing channels shows; optionally one channel with a tiny variance, so that eps shows."""
    n, c, h, w = shape
    means = np.linspace(-6.0, 9.0, c)
    stds = np.linspace(0.5, 3.0, c)
    x = means[None, :, None, None] + stds[None, :, None, None] * rng.standard_normal(shape)
    if small_variance_channel:
        x[:, 0] = 2.0 + 3e-3 * rng.standard_normal((n, h, w))
    return x


def _first_output(result):
    """Accept fn returning out or (out, cache)."""
    if isinstance(result, tuple) and len(result) >= 1:
        result = result[0]
    return np.asarray(result, dtype=np.float64) if result is not None else None


def _close(a, b, tolerance=TOLERANCE) -> bool:
    """Equal to the checker's tolerance, or (a looser one, for an answer in float32) to
    ``tolerance`` relative to the largest value."""
    if a is None or a.shape != b.shape:
        return False
    if tolerance == TOLERANCE:
        return bool(np.allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE))
    return bool(np.abs(a - b).max() <= tolerance * np.abs(b).max())


def _rounding_tolerance(precision) -> float:
    """How close a correct answer computed in ``precision`` comes to the float64 reference
    (a thousand machine epsilons, relative to the largest value), or TOLERANCE for float64."""
    return TOLERANCE if precision is None else 1e3 * LOW_PRECISION[precision]


def _precision_note(precision, got, expected) -> str | None:
    """The float32 message for an answer that differs from ``expected``; None if the difference
    is not a matter of precision (the answer is wrong for another reason)."""
    error = float(np.abs(got - expected).max() / np.abs(expected).max())  # relative to the largest value
    if precision is not None and error > _rounding_tolerance(precision):
        return None
    return low_precision_message(precision, error, TOLERANCE)


#: Names of the axes of (N, C, H, W) and of group norm's (N, G, C // G, H, W).
AXIS_NAMES = {4: ("N", "C", "H", "W"), 5: ("N", "G", "C/G", "H", "W")}


def describe_axes(axes, ndim: int) -> str:
    """What averaging over ``axes`` of an (N, C, H, W) (ndim 4) or (N, G, C/G, H, W) (ndim 5)
    array does, in words: "averages over N, H (axes 0, 2): one mean and variance per (C, W)"."""
    names = AXIS_NAMES[ndim]
    axes = tuple(sorted(axes))
    kept = [names[a] for a in range(ndim) if a not in axes]
    over = ", ".join(names[a] for a in axes) or _("nothing")
    per = (_("one mean and variance in all") if not kept else
           _("one mean and variance per {axis}").format(axis=kept[0]) if len(kept) == 1 else
           _("one mean and variance per ({axes})").format(axes=', '.join(kept)))
    return _("averages over {over} (axes {axes}): {per}").format(over=over, axes=', '.join(map(str, axes)),
                                                                 per=per)


def _statistics_of(got, x, ndim, eps, affine=None):
    """The axes of x (ndim 4) or of its grouped view (ndim 5, ``x`` already grouped) over which
    normalizing gives ``got`` (after ``affine``, if given), or None."""
    from itertools import combinations

    for size in range(1, ndim + 1):
        for axes in combinations(range(ndim), size):
            candidate = normalize(x, axes, eps)
            if affine is not None:
                candidate = affine(candidate)
            if _close(got, candidate.reshape(got.shape)):
                return axes
    return None


def _not_attempted(name: str) -> Feedback:
    return Feedback(name, attempted=False)


# ----------------------------------------------------------------------------------------
# Spatial batch norm, forward
# ----------------------------------------------------------------------------------------


def _spatial_mistakes(x, gamma, beta, eps):
    """Outputs of the usual wrong versions, each with the message that explains it."""
    n, c, h, w = x.shape
    per_channel = gamma[None, :, None, None], beta[None, :, None, None]

    def affine(x_hat):
        return per_channel[0] * x_hat + per_channel[1]

    def bn_rows(rows):
        return batchnorm_forward(rows, gamma, beta, eps)[0]

    centred = x - x.mean(axis=(0, 2, 3), keepdims=True)
    unbiased = (centred**2).sum(axis=(0, 2, 3), keepdims=True) / (n * h * w - 1)
    biased = (centred**2).mean(axis=(0, 2, 3), keepdims=True)
    return [
        (bn_rows(x.reshape(-1, c)).reshape(n, c, h, w),
         _("You reshaped (N, C, H, W) straight to (N*H*W, C) without transposing first. In "
           "memory the last axis is W, so each 'row' holds C consecutive values in memory, "
           "neighbouring positions of one channel (two where a channel's map ends), and each "
           "'column' mixes all channels. Transpose to (N, H, W, C) first: "
           "x.transpose(0, 2, 3, 1).reshape(-1, C).")),
        (bn_rows(x.transpose(0, 2, 3, 1).reshape(-1, c)).reshape(n, c, h, w),
         _("The statistics are right, but the output is laid out wrongly: you reshaped the "
           "(N*H*W, C) result directly to (N, C, H, W). Undo the steps in reverse order: "
           "reshape to (N, H, W, C), then transpose(0, 3, 1, 2).")),
        (affine(normalize(x, (0,), eps)),
         _("Your statistics are per (c, h, w), averaged over the batch only: the rule for "
           "fully connected layers. A convolution applies the same filter at every position, "
           "so BN uses one mean and variance per channel, over N, H and W (paper §3.2).")),
        (affine(normalize(x, (2, 3), eps)),
         _("Your statistics are per sample and channel, over H and W only (that is instance "
           "norm). Batch norm averages over the batch too: axes (0, 2, 3).")),
        (affine(normalize(x, (1, 2, 3), eps)),
         _("Your statistics are per sample, over (C, H, W) (that is layer norm). Batch norm "
           "keeps one mean and variance per channel: average over axes (0, 2, 3).")),
        (affine(normalize(x, (0, 1, 2, 3), eps)),
         _("You used one mean and one variance for the whole array. Batch norm keeps one per "
           "channel: average over axes (0, 2, 3).")),
        (affine(centred / np.sqrt(unbiased + eps)),
         _("Your variance divides by N*H*W - 1 (unbiased). Normalization uses the biased "
           "variance (divide by m' = N*H*W); only the running estimate is stored unbiased.")),
        (affine(centred / np.sqrt(biased)),
         _("eps is missing: divide by sqrt(var + eps), not sqrt(var) (it matters for channels "
           "with a tiny variance).")),
        (centred / np.sqrt(biased + eps),
         _("You return x_hat: gamma and beta (one per channel) still have to be applied.")),
        (beta[None, :, None, None] * centred / np.sqrt(biased + eps) + gamma[None, :, None, None],
         _("gamma and beta are swapped: out = gamma * x_hat + beta.")),
    ]


def check_spatial_batchnorm_forward(spatial_forward) -> Feedback:
    """Check ``spatial_forward(x, gamma, beta, eps=1e-5)`` -> (N, C, H, W) output
    (or (out, cache)) against ``helpers.bn.spatial_batchnorm_forward``."""
    feedback = Feedback(_("spatial batch norm, forward"))
    rng = np.random.default_rng(5)
    shapes = [(2, 3, 4, 5), (3, 4, 2, 3), (4, 2, 3, 3)]
    for shape in shapes:
        n, c, h, w = shape
        x = _feature_map_case(rng, shape)
        gamma = rng.uniform(0.5, 2.0, c)
        beta = rng.uniform(-1.0, 1.0, c)
        eps = 1e-5
        expected = spatial_batchnorm_forward(x, gamma, beta, eps)[0]
        try:
            raw = call_reader_function(spatial_forward, x.copy(), gamma.copy(), beta.copy(), eps)
            got = _first_output(raw)
        except NotAttempted:
            return _not_attempted(feedback.exercise)
        except Exception as error:  # the reader's code failed: say how, don't crash
            feedback.add(_("Your function raised {value}: {error} "
                         "(x of shape {shape}).").format(value=type(error).__name__, error=error, shape=shape))
            return feedback
        if got is None:
            feedback.add(_("Your function returned None: return the output array."))
            return feedback
        if got.shape != expected.shape:
            if got.shape == (n, h, w, c):
                feedback.add(_("Your output has shape (N, H, W, C) = {shape}: transpose it "
                             "back to (N, C, H, W) with .transpose(0, 3, 1, 2).").format(shape=got.shape))
            elif got.shape == (n * h * w, c):
                feedback.add(_("Your output has shape (N*H*W, C) = {shape}: reshape to "
                             "(N, H, W, C), then transpose back to (N, C, H, W).").format(shape=got.shape))
            else:
                feedback.add(_("Your output has shape {shape}; expected the input's shape "
                             "(N, C, H, W) = {shape2}.").format(shape=got.shape, shape2=expected.shape))
            return feedback
        if _close(got, expected):
            continue
        precision = precision_of(raw)
        note = _precision_note(precision, got, expected)
        if note and precision is not None:   # a float64 answer: the usual mistakes first
            feedback.add(note + _(" (x of shape {shape})").format(shape=shape))
            return feedback
        loose = _rounding_tolerance(precision)
        for candidate, message in _spatial_mistakes(x, gamma, beta, eps):
            if _close(got, candidate, loose):
                feedback.add(message)
                return feedback
        axes = _statistics_of(got, x, 4, eps, lambda x_hat, g=gamma, b=beta: g[None, :, None, None] * x_hat
                              + b[None, :, None, None])
        if axes is not None:
            feedback.add(_("Your normalization {value}. Batch norm "
                         "{value2}.").format(value=describe_axes(axes, 4), value2=describe_axes(CORRECT_AXES['batch'], 4)))
            return feedback
        if note:
            feedback.add(note + _(" (x of shape {shape})").format(shape=shape))
            return feedback
        error = float(np.abs(got - expected).max())
        feedback.add(_("For x of shape {shape} your output differs from the reference by up "
                     "to {error:.3g}. Check the per-channel statistics over axes (0, 2, 3), "
                     "the biased variance, eps, and gamma * x_hat + beta.").format(shape=shape, error=error))
        return feedback
    feedback.passed = True
    feedback.add(_("Agrees with helpers.bn.spatial_batchnorm_forward on {n_shapes} hidden "
                 "cases (shapes {value}).").format(n_shapes=len(shapes), value=', '.join(map(str, shapes))))
    return feedback


# ----------------------------------------------------------------------------------------
# Which axes?
# ----------------------------------------------------------------------------------------

#: Correct answers. batch/layer/instance: axes of (N, C, H, W); group: axes of
#: x.reshape(N, G, C // G, H, W).
CORRECT_AXES = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3), "group": (2, 3, 4)}

#: what each kind is called in the feedback
_KIND_NAMES = {"batch": N_("batch norm"), "layer": N_("layer norm"), "instance": N_("instance norm"),
               "group": N_("group norm")}

_AXIS_HINTS = {
    "batch": {
        (0,): N_("that is one statistic per (c, h, w): the fully connected rule. A convolution "
                 "shares one mean and variance per channel over N, H and W."),
        (2, 3): N_("that is instance norm (per sample and channel). Batch norm also averages "
                   "over the batch axis."),
        (1, 2, 3): N_("that is layer norm (per sample). Batch norm keeps one statistic per "
                      "channel and averages over everything else."),
        (0, 1, 2, 3): N_("that averages over everything, channels included. Batch norm keeps "
                         "one statistic per channel."),
    },
    "layer": {
        (0, 2, 3): N_("that is batch norm's choice (per channel, across the batch). Layer norm "
                      "never mixes samples: one statistic per sample."),
        (2, 3): N_("that is instance norm (per sample AND channel). Layer norm averages over "
                   "the channels as well."),
        (1,): N_("that averages over the channels at each position separately. The layer norm "
                 "of a feature map (torch's nn.LayerNorm([C, H, W]), GroupNorm(1, C)) averages "
                 "over all of C, H and W."),
        (0, 1, 2, 3): N_("that includes the batch axis. Layer norm never mixes samples."),
    },
    "instance": {
        (0, 2, 3): N_("that is batch norm's choice. Instance norm never mixes samples: one "
                      "statistic per sample and channel."),
        (1, 2, 3): N_("that is layer norm (all channels together). Instance norm keeps one "
                      "statistic per channel of each sample."),
        (0, 1, 2, 3): N_("that averages over everything. Instance norm keeps one statistic per "
                         "sample and channel."),
    },
    "group": {
        (1, 2, 3, 4): N_("that averages over all groups of a sample: layer norm. Group norm "
                         "keeps one statistic per (sample, group): leave axis 1 (G) out."),
        (3, 4): N_("that averages over positions only, one statistic per channel of each "
                   "sample: instance norm. Include the channels of the group (axis 2)."),
        (2,): N_("that averages the channels of a group at each position separately. Group norm "
                 "averages over all H x W positions too: axes (2, 3, 4)."),
        (0, 2, 3, 4): N_("that mixes samples (axis 0). Group norm, like layer norm, works on "
                         "each sample alone."),
        (1, 3, 4): N_("axis 1 indexes the groups and axis 2 the channels inside a group: "
                      "average over the channels of one group (axis 2), not across groups."),
    },
}


def _as_axes(value, ndim):
    """A reader's answer as a sorted tuple of non-negative axes, or None if malformed."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    try:
        axes = [int(a) for a in value]
    except (TypeError, ValueError):
        return None
    if any(not -ndim <= a < ndim for a in axes):
        return None
    return tuple(sorted({a % ndim for a in axes}))


def check_normalization_axes(answer_function) -> Feedback:
    """Check ``answer_function()`` -> {"batch": axes, "layer": axes, "instance": axes,
    "group": axes}. batch / layer / instance: axes of an (N, C, H, W) array; group: axes
    of x.reshape(N, G, C // G, H, W). Order and negative indices do not matter."""
    feedback = Feedback(_("which axes does each normalization average over?"))
    try:
        answers = call_reader_function(answer_function)
    except NotAttempted:
        return _not_attempted(feedback.exercise)
    except Exception as error:
        feedback.add(_("Your function raised {value}: {error}.").format(value=type(error).__name__, error=error))
        return feedback
    if not isinstance(answers, dict):
        feedback.add(_("Return a dict such as {'batch': (0, 2, 3), 'layer': ..., "
                     "'instance': ..., 'group': ...}."))
        return feedback
    all_right = True
    for kind, correct in CORRECT_AXES.items():
        if kind not in answers or answers[kind] is None or answers[kind] is Ellipsis:
            feedback.add(_("{kind}: no answer yet.").format(kind=kind))
            all_right = False
            continue
        ndim = 5 if kind == "group" else 4
        axes = _as_axes(answers[kind], ndim)
        if axes is None:
            feedback.add(_("{kind}: {value!r} is not a tuple of axes of a {ndim}-D array.").format(kind=kind, value=answers[kind], ndim=ndim))
            all_right = False
        elif axes == correct:
            feedback.add(_("{kind}: {axes} is right.").format(kind=kind, axes=axes))
        else:
            hint = _AXIS_HINTS[kind].get(axes)
            hint = _(hint) if hint else hint
            named = _("{axes} {value}; {name} {value2}.").format(axes=axes, value=describe_axes(axes, ndim),
                                                               name=_(_KIND_NAMES[kind]),
                                                               value2=describe_axes(correct, ndim))
            feedback.add(_("{kind}: {axes} is not right: {hint} Your {named}").format(kind=kind, axes=axes, hint=hint, named=named) if hint
                         else _("{kind}: {named}").format(kind=kind, named=named))
            all_right = False
    feedback.passed = all_right
    return feedback


# ----------------------------------------------------------------------------------------
# Group norm
# ----------------------------------------------------------------------------------------


def _group_mistakes(x, num_groups, eps):
    n, c, h, w = x.shape
    g = num_groups
    interleaved = normalize(x.reshape(n, c // g, g, h, w), (1, 3, 4), eps).reshape(n, c, h, w)
    grouped = x.reshape(n, g, c // g, h, w)
    centred = grouped - grouped.mean(axis=(2, 3, 4), keepdims=True)
    count = (c // g) * h * w
    unbiased = (centred**2).sum(axis=(2, 3, 4), keepdims=True) / (count - 1)
    biased = (centred**2).mean(axis=(2, 3, 4), keepdims=True)
    return [
        (interleaved,
         _("Your groups are interleaved (channels 0, G, 2G, ... together): you reshaped to "
           "(N, C // G, G, H, W). torch's GroupNorm puts CONSECUTIVE channels in a group: "
           "reshape to (N, G, C // G, H, W).")),
        (normalize(x, (1, 2, 3), eps),
         _("You normalized each sample over all its channels: that is layer norm (G = 1). "
           "Give each group of C // G channels its own mean and variance.")),
        (normalize(x, (2, 3), eps),
         _("You normalized each channel on its own: that is instance norm (G = C). Average "
           "over the C // G channels of a group together.")),
        (normalize(grouped, (0, 2, 3, 4), eps).reshape(n, c, h, w),
         _("Your statistics mix the samples of the batch (axis 0). Group norm works on each "
           "sample alone.")),
        (normalize(grouped, (2,), eps).reshape(n, c, h, w),
         _("Your statistics are per position: average over H and W too, axes (2, 3, 4) of the "
           "(N, G, C // G, H, W) array.")),
        ((centred / np.sqrt(unbiased + eps)).reshape(n, c, h, w),
         _("Your variance divides by (count - 1) (unbiased). Use the biased variance, as torch "
           "does.")),
        ((centred / np.sqrt(biased)).reshape(n, c, h, w),
         _("eps is missing: divide by sqrt(var + eps).")),
    ]


def check_group_norm(group_norm) -> Feedback:
    """Check ``group_norm(x, num_groups, eps=1e-5)`` -> (N, C, H, W) against
    ``helpers.norms.group_normalize`` (= torch.nn.GroupNorm(G, C, affine=False))."""
    feedback = Feedback(_("group normalization"))
    rng = np.random.default_rng(55)
    cases = [((2, 6, 3, 4), 3), ((3, 4, 2, 2), 2), ((2, 4, 3, 3), 1), ((2, 4, 2, 3), 4)]
    for shape, num_groups in cases:
        x = _feature_map_case(rng, shape)
        expected = group_normalize(x, num_groups)
        try:
            raw = call_reader_function(group_norm, x.copy(), num_groups, 1e-5)
            got = _first_output(raw)
        except NotAttempted:
            return _not_attempted(feedback.exercise)
        except Exception as error:
            feedback.add(_("Your function raised {value}: {error} "
                         "(x of shape {shape}, G = {num_groups}).").format(value=type(error).__name__, error=error, shape=shape, num_groups=num_groups))
            return feedback
        if got is None:
            feedback.add(_("Your function returned None: return the output array."))
            return feedback
        if got.shape != expected.shape:
            feedback.add(_("Your output has shape {shape}; expected the input's shape "
                         "{shape2}: reshape back to (N, C, H, W).").format(shape=got.shape, shape2=expected.shape))
            return feedback
        if _close(got, expected):
            continue
        precision = precision_of(raw)
        note = _precision_note(precision, got, expected)
        if note and precision is not None:   # a float64 answer: the usual mistakes first
            feedback.add(note + _(" (x of shape {shape}, G = {num_groups})").format(shape=shape, num_groups=num_groups))
            return feedback
        loose = _rounding_tolerance(precision)
        for candidate, message in _group_mistakes(x, num_groups, 1e-5):
            if _close(got, candidate, loose):
                feedback.add(message + _(" (x of shape {shape}, G = {num_groups})").format(shape=shape, num_groups=num_groups))
                return feedback
        n, c, h, w = shape
        axes = _statistics_of(got, x.reshape(n, num_groups, c // num_groups, h, w), 5, 1e-5)
        if axes is not None:
            feedback.add(_("Reshaped to (N, G, C/G, H, W), your normalization {value}. "
                         "Group norm {value2} (x of shape {shape}, "
                         "G = {num_groups}).").format(value=describe_axes(axes, 5), value2=describe_axes(CORRECT_AXES['group'], 5), shape=shape, num_groups=num_groups))
            return feedback
        if note:
            feedback.add(note + _(" (x of shape {shape}, G = {num_groups})").format(shape=shape, num_groups=num_groups))
            return feedback
        error = float(np.abs(got - expected).max())
        feedback.add(_("For x of shape {shape} and G = {num_groups} your output differs from "
                     "the reference by up to {error:.3g}.").format(shape=shape, num_groups=num_groups, error=error))
        return feedback
    feedback.passed = True
    feedback.add(_("Agrees with helpers.norms.group_normalize (torch's GroupNorm) on "
                 "{n_cases} hidden cases, G = 1 (layer norm) and G = C (instance norm) "
                 "included.").format(n_cases=len(cases)))
    return feedback
