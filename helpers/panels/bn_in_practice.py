"""Notebook 08's panels: the residual stream at initialization, and a variance in low precision.

1. ``compute_residual_stream(depth, gain, zero_init)``: the variance of a residual network's
   stream after every block at initialization, without BN and with BN in every branch (its
   last gamma zero or one), for branch weights He-initialized times ``gain``. Each setting of
   (gain, zero_init) is one forward pass of a 64-block network (remembered); the depth slider
   only shows a prefix of it. No training.
2. ``compute_low_precision(mean, spread, batch_size, precision)``: one batch of activations of 16
   features stored in float16 or float32, and the relative error of its variance computed three
   ways in that precision (``helpers.welford``: E[x^2] - E[x]^2, two passes, Welford's update).
   No training; the last settings are remembered.

Both redraw their kept figure in place (``update_*``); the axes that stay put are drawn once by
a ``Backdrop`` and pasted back, their moving artists sit on a see-through ``overlay_axes``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from helpers.backdrop import Backdrop, overlay_axes
from helpers.data import DataFileError
from helpers.i18n import N_, _
from helpers.lessons import bn_in_practice as lesson
from helpers.panel import Control, Notice, Panel
from helpers.welford import one_pass_moments, two_pass_moments, welford_moments

__all__ = [
    "PANELS",
    "compute_low_precision",
    "compute_residual_stream",
    "draw_low_precision",
    "draw_residual_stream",
    "update_low_precision",
    "update_residual_stream",
]

MAX_DEPTH = 64
PROBE_IMAGES = 512
GAINS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)  # the gain slider's values
FLOAT_MAX = float(np.finfo(np.float32).max)


def _style():
    import matplotlib.pyplot as plt

    return plt.rc_context({"font.size": 9, "axes.titlesize": 9, "axes.titley": 1.0,
                           "axes.spines.top": False, "axes.spines.right": False,
                           "legend.fontsize": 8, "legend.frameon": False})


# ----------------------------------------------------------------------------------------
# 1. The residual stream at initialization
# ----------------------------------------------------------------------------------------


@lru_cache(maxsize=2 * len(GAINS) + 2)
def _stream(batchnorm: bool, zero_init: bool, gain: float) -> np.ndarray:
    """(MAX_DEPTH + 1,) variances of the stream of a 64-block ResidualMLP at initialization."""
    data = lesson.mnist_subset()
    model = lesson.ResidualMLP(MAX_DEPTH, batchnorm=batchnorm, zero_init=zero_init, gain=gain, seed=0)
    variances = lesson.stream_variances(model, data.x_train[:PROBE_IMAGES])
    variances.setflags(write=False)
    return variances


def compute_residual_stream(depth=16, gain=1.0, zero_init=False):
    """Variance of the residual stream after the stem and after each of ``depth`` blocks.

    Args:
        depth:     1..64 blocks
        gain:      the branch weights are He-initialized times this (rounded to steps of 0.25,
                   from 0.25 to 2)
        zero_init: the last BN of each branch starts with gamma = 0 (the BN network only)

    Returns:
        dict: depth, gain, zero_init, blocks (depth + 1,), none and batch (depth + 1,)
        variances (inf where float32 overflowed), or a Notice
    """
    if not 1 <= depth <= MAX_DEPTH:
        return Notice(_("Choose a depth from 1 to {MAX_DEPTH} blocks (got {depth}).").format(MAX_DEPTH=MAX_DEPTH, depth=depth))
    if not GAINS[0] <= gain <= GAINS[-1]:
        return Notice(_("Choose a gain from {value} to {value2} (got {gain}).").format(value=GAINS[0], value2=GAINS[-1], gain=gain))
    depth = int(depth)
    gain = float(min(GAINS, key=lambda g: abs(g - gain)))
    try:
        none = _stream(False, False, gain)[:depth + 1]
        batch = _stream(True, bool(zero_init), gain)[:depth + 1]
    except DataFileError as error:
        return Notice(_("The MNIST file could not be read, so the stream cannot be measured: {error}").format(error=error))
    return dict(depth=depth, gain=gain, zero_init=bool(zero_init), blocks=np.arange(depth + 1),
                none=none, batch=batch)


def draw_residual_stream(result):
    """The stream's variance against the block, on a log scale: without BN and with BN."""
    figure = _build_residual_stream()
    update_residual_stream(figure, result)
    return figure


def _build_residual_stream():
    import matplotlib.pyplot as plt

    with _style():
        figure, ax = plt.subplots(figsize=(7.5, 3.6))
        figure.subplots_adjust(left=0.1, right=0.97, bottom=0.14, top=0.86)
        ax.set(yscale="log", ylim=(1e-3, 1e40), xlabel=_("block"), ylabel=_("variance of the stream"))
        ax.set_yticks([1e-3, 1e0, 1e10, 1e20, 1e30, 1e40])
        ax.grid(alpha=0.3)
        ax.axhline(FLOAT_MAX, color="0.6", ls=":", lw=1)
        ax.text(0.01, FLOAT_MAX * 2, _("float32 overflows"), fontsize=7, color="0.5",
                transform=ax.get_yaxis_transform())
        moving = overlay_axes(ax)
        artists = dict(
            none=moving.plot([], [], color="#7f7f7f", lw=2, marker=".", ms=4)[0],
            batch=moving.plot([], [], color="#1f77b4", lw=2, marker=".", ms=4)[0],
            none_label=moving.text(0, 0, "", color="#555555", fontsize=8, va="bottom", ha="right"),
            batch_label=moving.text(0, 0, "", color="#1f77b4", fontsize=8, va="top", ha="right"),
            title=figure.text(0.1, 0.93, "", fontsize=9, ha="left"),
            axes=ax,
        )
    artists["backdrop"] = Backdrop(figure, [ax])
    figure._panel_artists = artists
    return figure


def _shown(values):
    """Variances as plotted: overflowed (inf) values drawn at the float32 limit."""
    return np.where(np.isfinite(values), values, FLOAT_MAX)


def _describe(values) -> str:
    final = values[-1]
    if not np.isfinite(final):
        block = int(np.flatnonzero(~np.isfinite(values))[0])
        return _("overflowed at block {block}").format(block=block)
    return f"{final:.3g}"


def update_residual_stream(figure, result):
    """Put a ``compute_residual_stream`` result into a figure from ``draw_residual_stream``."""
    artists = figure._panel_artists
    blocks, depth = result["blocks"], result["depth"]
    for name, values in (("none", result["none"]), ("batch", result["batch"])):
        artists[name].set_data(blocks, _shown(values))
    bn_name = _("BN, last γ = 0") if result["zero_init"] else _("BN, last γ = 1")
    artists["none_label"].set_text(_("no BN: {value}").format(value=_describe(result['none'])))
    artists["none_label"].set_position((depth, _shown(result["none"])[-1] * 3))
    artists["batch_label"].set_text(_("{bn_name}: {value}").format(bn_name=bn_name, value=_describe(result['batch'])))
    artists["batch_label"].set_position((depth, result["batch"][-1] / 3))
    artists["title"].set_text(
        _("variance of the residual stream at initialization, {depth} blocks, branch weights "
        "{gain:g} x He (labels: the variance after the last block; "
        "after the stem it is {value:.3g})").format(depth=depth, gain=result['gain'], value=result['batch'][0]))
    ax = artists["axes"]
    ax.set_xlim(-0.02 * depth, depth * 1.02)
    artists["backdrop"].redraw_if_changed(ax.get_xlim())


# ----------------------------------------------------------------------------------------
# 2. A variance in low precision
# ----------------------------------------------------------------------------------------

PRECISIONS = ("float16", "float32")
METHODS = ("E[x²] − E[x]²", N_("two passes"), "Welford")  # shown translated
FEATURES = 16
ERROR_RANGE = (1e-9, 1e3)


def compute_low_precision(mean=300.0, spread=1.0, batch_size=256, precision="float16"):
    """One batch of activations (batch_size, 16) = mean + spread * N(0, 1), stored in
    ``precision``, and its variance computed three ways in that precision.

    Returns:
        dict: values (batch_size,) the first feature's values as stored, the settings, exact
        (the float64 variance of the stored values, median over features), and per method its
        relative error (median over the features; inf or nan when the result is) and what went
        wrong ("overflow", "negative", "nan" or ""), or a Notice when the stored values have
        no spread left (every value rounded to the same number)
    """
    if precision not in PRECISIONS:
        return Notice(_("Choose a precision among {PRECISIONS} (got {precision!r}).").format(PRECISIONS=PRECISIONS, precision=precision))
    if not (batch_size >= 2 and mean > 0 and spread > 0):
        return Notice(_("Choose a batch of at least 2 values, a positive mean and a positive spread."))
    return _low_precision(float(mean), float(spread), int(batch_size), precision)


@lru_cache(maxsize=64)
def _low_precision(mean, spread, batch_size, precision):
    dtype = np.dtype(precision)
    rng = np.random.default_rng(0)
    with np.errstate(over="ignore"):
        stored = (mean + spread * rng.standard_normal((batch_size, FEATURES))).astype(dtype)
    if not np.all(np.isfinite(stored)):
        return Notice(_("{precision} cannot even store these values (its largest finite number "
                      "is {value:.4g}).").format(precision=precision, value=float(np.finfo(dtype).max)))
    exact = stored.astype(np.float64).var(axis=0)
    if np.any(exact == 0):
        spacing = float(np.spacing(dtype.type(mean)))
        return Notice(_("At a mean of {mean:g}, neighbouring {precision} numbers are {spacing:g} "
                      "apart: a spread of {spread:g} is lost when the activations are stored "
                      "(some feature's values all round to one number), so there is no "
                      "variance left to compute. Choose a larger spread or a smaller mean.").format(mean=mean, precision=precision, spacing=spacing, spread=spread))
    errors, problems = [], []
    with np.errstate(all="ignore"):
        for moments in (one_pass_moments, two_pass_moments, welford_moments):
            var = moments(stored, dtype)[1].astype(np.float64)
            problem = ("overflow" if np.any(np.isinf(var)) else "nan" if np.any(np.isnan(var))
                       else "negative" if np.any(var < 0) else "")
            errors.append(float(np.median(np.abs(var - exact) / exact)))
            problems.append(problem)
    return dict(values=stored[:, 0].astype(np.float64), mean=mean, spread=spread,
                batch_size=batch_size, precision=precision, exact=float(np.median(exact)),
                errors=np.array(errors), problems=tuple(problems),
                roundoff=float(np.finfo(dtype).eps / 2))


def draw_low_precision(result):
    """Left: the first feature's stored values. Right: each method's relative error (log scale)."""
    figure = _build_low_precision()
    update_low_precision(figure, result)
    return figure


def _build_low_precision():
    import matplotlib.pyplot as plt

    with _style():
        figure, (ax_values, ax_errors) = plt.subplots(1, 2, figsize=(10, 3.3),
                                                      gridspec_kw=dict(width_ratios=(1, 1.3)))
        figure.subplots_adjust(left=0.05, right=0.98, bottom=0.16, top=0.8, wspace=0.35)
        ax_values.set(xlabel=_("value as stored"), yticks=[])
        ax_errors.set(xscale="log", xlim=ERROR_RANGE, ylim=(-0.6, len(METHODS) - 0.4),
                      xlabel=_("relative error of the variance (median over 16 features)"))
        ax_errors.set_yticks(range(len(METHODS)), [_(method) for method in METHODS])
        ax_errors.invert_yaxis()
        ax_errors.grid(alpha=0.3, axis="x")
        ax_errors.axvline(1.0, color="k", lw=0.8)
        ax_errors.text(1.1, -0.5, "100 %", fontsize=7, va="center")
        moving = overlay_axes(ax_errors)
        bars = moving.barh(range(len(METHODS)), [1.0] * len(METHODS), left=ERROR_RANGE[0],
                           height=0.55, color=["#d62728", "#2ca02c", "#1f77b4"])
        artists = dict(
            values=ax_values.stairs([0.0], [0.0, 1.0], fill=True, color="0.6"),
            bars=bars,
            notes=[moving.text(1.0, k, "", va="center", ha="left", fontsize=8)
                   for k in range(len(METHODS))],
            roundoff=moving.axvline(1e-3, color="0.4", ls="--", lw=1),
            roundoff_label=moving.text(1e-3, len(METHODS) - 0.45, "", fontsize=7, color="0.3",
                                       ha="center", va="bottom"),
            values_title=ax_values.set_title(""),
            title=figure.text(0.05, 0.94, "", fontsize=10, ha="left"),
            ax_values=ax_values,
        )
    artists["backdrop"] = Backdrop(figure, [ax_errors])
    figure._panel_artists = artists
    return figure


def update_low_precision(figure, result):
    """Put a ``compute_low_precision`` result into a figure from ``draw_low_precision``."""
    artists = figure._panel_artists
    values = result["values"]
    low, high = values.min(), values.max()
    width = max(high - low, abs(result["mean"]) * 1e-6, 1e-12)
    counts, edges = np.histogram(values, bins=30, range=(low - 0.05 * width, high + 0.05 * width))
    artists["values"].set_data(counts, edges)
    ax = artists["ax_values"]
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, counts.max() * 1.1)
    ax.locator_params(axis="x", nbins=4)
    artists["values_title"].set_text(_("{batch_size} activations of one feature, "
                                     "{precision}").format(batch_size=result['batch_size'], precision=result['precision']))
    for bar, note, error, problem in zip(artists["bars"], artists["notes"], result["errors"],
                                         result["problems"]):
        shown = error if np.isfinite(error) else ERROR_RANGE[1]
        shown = min(max(shown, ERROR_RANGE[0] * 1.5), ERROR_RANGE[1])
        bar.set_width(shown - ERROR_RANGE[0])
        text = {"overflow": _("overflow: inf"), "nan": "nan (inf − inf)",
                "negative": _("{error:.1%}, some variances < 0").format(error=error)}.get(problem, f"{error:.1e}")
        note.set_text(text)
        note.set_position((min(shown * 1.4, ERROR_RANGE[1] / 300) if problem else shown * 1.4,
                           note.get_position()[1]))
    artists["roundoff"].set_xdata([result["roundoff"]] * 2)
    artists["roundoff_label"].set_position((result["roundoff"], len(METHODS) - 0.45))
    artists["roundoff_label"].set_text(_("{precision} rounding\n{roundoff:.1e}").format(precision=result['precision'], roundoff=result['roundoff']))
    artists["title"].set_text(_("mean {mean:g}, spread {spread:g}: exact "
                              "variance {exact:.4g}").format(mean=result['mean'], spread=result['spread'], exact=result['exact']))


PANELS = [
    Panel(
        "residual stream at initialization: depth, branch scale, zero-init γ",
        compute_residual_stream,
        draw_residual_stream,
        [
            Control("depth", "int", 16, low=1, high=MAX_DEPTH, description=N_("blocks")),
            Control("gain", "float", 1.0, low=GAINS[0], high=GAINS[-1], step=0.25,
                    description=N_("branch weights (x He)")),
            Control("zero_init", "toggle", False, description=N_("zero-init the last γ of each block")),
        ],
        update=update_residual_stream,
    ),
    Panel(
        "variance in low precision: mean, spread, batch, precision",
        compute_low_precision,
        draw_low_precision,
        [
            Control("mean", "log", 300.0, low=1.0, high=3000.0, step=0.05, description=N_("mean"),
                    test_values=(1.0, 10.0, 300.0, 3000.0)),
            Control("spread", "log", 1.0, low=0.01, high=100.0, step=0.1, description=N_("spread (std)")),
            Control("batch_size", "int", 256, low=2, high=1024, description=N_("batch size")),
            Control("precision", "choice", "float16", options=PRECISIONS, description=N_("precision")),
        ],
        update=update_low_precision,
    ),
]
