"""Panels of notebook 03, "The backward pass".

- "gradient check: upstream pattern": which broken backward passes a gradient check catches
  with a random, all-ones, one-hot or constant-per-feature upstream gradient.
- "finite differences: step h and precision": the relative error of a centered difference
  against the step h, in float64 and float32 (the U-shaped curve), with the current h marked.

The computations live in ``helpers.lessons.backward_pass``; these functions only arrange and draw them.
Each figure is built once (axes, ticks, what no control changes, empty artists for the rest)
and then filled from a result: ``draw_*`` builds and fills, ``update_*`` refills the figure a
panel keeps, so a slider move changes a few artists instead of making a new figure. What no
control changes (axes, tick labels, guides) is drawn once and then pasted back by a
``Backdrop`` (``helpers.backdrop``); the rest lives on see-through ``overlay_axes``.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import numpy as np

from helpers.backdrop import Backdrop, overlay_axes
from helpers.bn import batchnorm_backward
from helpers.gradcheck import CORRECT_BELOW, WRONG_ABOVE, verdict
from helpers.i18n import N_, _
from helpers.lessons.backward_pass import (
    BROKEN_BACKWARDS,
    UPSTREAM_PATTERNS,
    example_batch,
    finite_difference_errors,
    gradient_check_errors,
    numerical_bn_gradients,
    upstream_gradient,
)
from helpers.panel import Control, Notice, Panel

__all__ = [
    "PANELS",
    "compute_finite_difference_panel",
    "compute_pattern_check",
    "draw_finite_difference_panel",
    "draw_pattern_check",
    "update_finite_difference_panel",
    "update_pattern_check",
]

NUM_FEATURES = 3
CORRECT_NAME = N_("correct (helpers.bn)")  # a key of the results: translated where it is shown
VERDICT_COLORS = {"correct": "#2e7d32", "suspicious": "#d08c00", "WRONG": "#c62828"}


def _plain_log_ticks(axis, exponents):
    """Decade ticks labelled "1e-8" in plain text, no minor ticks (mathtext labels such as
    $10^{-8}$ are slow to lay out, and a redraw should take well under 100 ms)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    axis.set_major_locator(FixedLocator([10.0**e for e in exponents]))
    axis.set_ticklabels([f"1e{e}" if e else "1" for e in exponents])
    axis.set_minor_locator(NullLocator())


def _fix_label_places(ax, below=None, left=None):
    """Put the x label ``below`` points under the axes and the y label ``left`` points left of
    them (where matplotlib puts them next to these tick labels) once and for all: left to
    matplotlib, they are placed anew on every redraw by measuring every tick label."""
    from matplotlib.transforms import ScaledTranslation

    inches = ax.figure.dpi_scale_trans
    if below is not None:
        ax.xaxis.set_label_coords(0.5, 0, transform=ax.transAxes + ScaledTranslation(0, -below / 72, inches))
    if left is not None:
        ax.yaxis.set_label_coords(0, 0.5, transform=ax.transAxes + ScaledTranslation(-left / 72, 0, inches))


def _title(ax, text, fontsize):
    """Set the title at a fixed height (with y given, matplotlib does not measure the tick
    labels on every redraw to see whether the title must move up)."""
    ax.set_title(text, fontsize=fontsize, y=1.0)


# ----------------------------------------------------------------------------------------
# Panel 1: what a gradient check can detect, by upstream-gradient pattern
# ----------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _numeric_gradients(pattern, batch_size):
    x, gamma, beta = example_batch(batch_size, NUM_FEATURES, seed=0)
    dout = upstream_gradient(pattern, x.shape, seed=1)
    return x, gamma, beta, dout, numerical_bn_gradients(x, gamma, beta, dout)


def compute_pattern_check(pattern="random", batch_size=8):
    """Relative errors of the correct backward and of each broken one, for one upstream pattern.

    Args:
        pattern:    one of helpers.lessons.backward_pass.UPSTREAM_PATTERNS
        batch_size: N, the number of examples in the batch (3 features)

    Returns:
        Notice for N = 1 or an unknown pattern; otherwise a dict with "pattern", "dout" (N, 3),
        "names" (the backward passes, correct first), "errors" (one dict dx/dgamma/dbeta per
        name), "worst" (largest error per name), "worst_gradient" (which gradient it is),
        "verdicts", "caught" (the broken ones flagged WRONG *and* at least 10 times worse than
        the correct one: told apart from it), "correct_verdict", "note" (a remark on the batch
        size, or "").
    """
    if pattern not in UPSTREAM_PATTERNS:
        return Notice(_("Unknown upstream pattern {pattern!r}; choose one of {value}.").format(pattern=pattern, value=', '.join(UPSTREAM_PATTERNS)))
    if batch_size < 2:
        return Notice(_("A batch of one example has no variance: in training, BN cannot normalize it "
                      "(x - mean is 0 and the output is beta whatever x is), so there is no "
                      "gradient to check. Choose a batch of at least 2."))
    x, gamma, beta, dout, numeric = _numeric_gradients(pattern, int(batch_size))
    backwards = {CORRECT_NAME: batchnorm_backward, **BROKEN_BACKWARDS}
    errors = {name: gradient_check_errors(backward, x, gamma, beta, dout, numeric)
              for name, backward in backwards.items()}
    worst_gradient = {name: max(errs, key=errs.get) for name, errs in errors.items()}
    worst = {name: errors[name][worst_gradient[name]] for name in errors}
    verdicts = {name: verdict(error) for name, error in worst.items()}
    caught = [name for name in BROKEN_BACKWARDS
              if verdicts[name] == "WRONG" and worst[name] >= 10 * worst[CORRECT_NAME]]
    note = ""
    if batch_size == 2:
        note = _("N = 2: two values normalize to about -1 and +1 whatever they are, so the exact dx "
                 "is tiny (of order eps / var)\nand relative errors compare tiny numbers: "
                 "even the correct backward is only 'suspicious'.")
    return {"pattern": pattern, "dout": dout, "names": list(backwards), "errors": errors,
            "worst": worst, "worst_gradient": worst_gradient, "verdicts": verdicts,
            "caught": caught, "correct_verdict": verdicts[CORRECT_NAME], "note": note}


def draw_pattern_check(result):
    """Left: the upstream gradient as an image. Right: each backward's largest relative error
    (log scale) against the thresholds: the correct one coloured by its verdict, broken ones red
    when caught and grey when missed."""
    figure = _build_pattern_figure(result["names"])
    update_pattern_check(figure, result)
    return figure


def _build_pattern_figure(names):
    """Axes, ticks, thresholds and one bar and one label per backward pass (``names``, the
    correct one first), all empty; ``update_pattern_check`` fills them from a result, using
    the artists kept in ``figure.artists_to_update``.

    The bar chart's axes (ticks, the backward passes' names, the shaded verdict zones) are the
    still layer, drawn once by a ``Backdrop``; the bars, their labels, the dashed thresholds
    (drawn over the bars) and the title are on a see-through ``overlay_axes`` over it. The
    upstream gradient's axes is drawn on every move: its rows (and their ticks) follow the batch
    size."""
    import matplotlib.pyplot as plt

    fig, (ax_dout, ax_bars) = plt.subplots(1, 2, figsize=(9.5, 3.4),
                                           gridspec_kw={"width_ratios": [1, 4.2]})
    a = SimpleNamespace(ax_dout=ax_dout, ax_bars=ax_bars)
    a.dout = ax_dout.imshow(np.zeros((2, NUM_FEATURES)), cmap="RdBu_r", aspect="auto")
    ax_dout.set_xlabel(_("feature"), fontsize=8)
    ax_dout.set_ylabel(_("example"), fontsize=8)
    ax_dout.set_xticks(range(NUM_FEATURES))
    ax_dout.tick_params(labelsize=7)
    _fix_label_places(ax_dout, below=18, left=19.6)  # room for two-digit example numbers

    positions = np.arange(len(names))[::-1]
    ax_bars.set_xscale("log")
    a.moving_bars = overlay_axes(ax_bars)
    a.bars = a.moving_bars.barh(positions, np.ones(len(names)), color=VERDICT_COLORS["correct"], height=0.6)
    a.labels = [a.moving_bars.text(1, position, "", va="center", fontsize=8) for position in positions]
    ax_bars.set_xlim(1e-16, 1e5)
    ax_bars.axvspan(1e-16, CORRECT_BELOW, color=VERDICT_COLORS["correct"], alpha=0.07)
    ax_bars.axvspan(WRONG_ABOVE, 1e5, color=VERDICT_COLORS["WRONG"], alpha=0.07)
    for threshold in (CORRECT_BELOW, WRONG_ABOVE):  # over the bars (on the overlay), not hidden by them
        a.moving_bars.axvline(threshold, color="#333", lw=0.9, ls="--", zorder=3)
    ax_bars.set_yticks(positions)
    ax_bars.set_yticklabels([_(name) for name in names], fontsize=8.5)
    ax_bars.set_xlabel(_("largest relative error of dx, dgamma, dbeta (float64, h = 1e-5)"), fontsize=8.5)
    _plain_log_ticks(ax_bars.xaxis, range(-16, 1, 4))  # the bars' own labels give the values
    ax_bars.tick_params(axis="x", labelsize=7.5)
    _fix_label_places(ax_bars, below=18.5)
    a.note = fig.text(0.5, 0.985, "", ha="center", va="top", fontsize=8, color="#8a5a00")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.16, wspace=0.55)
    a.moving_bars.set_position(ax_bars.get_position())
    a.backdrop = Backdrop(fig, [ax_bars])
    fig.artists_to_update = a
    return fig


def update_pattern_check(figure, result):
    """Show ``result`` in a figure made by ``draw_pattern_check`` (the panel's redraw)."""
    a = figure.artists_to_update
    dout = result["dout"]
    limit = max(np.abs(dout).max(), 1e-12)
    a.dout.set_data(dout)
    a.dout.set_clim(-limit, limit)
    rows, columns = dout.shape
    a.dout.set_extent((-0.5, columns - 0.5, rows - 0.5, -0.5))  # one cell per entry, row 0 on top
    a.ax_dout.set_yticks(range(0, rows, max(1, rows // 4)))
    _title(a.ax_dout, _("upstream dout\n({pattern})").format(pattern=_(result["pattern"])), fontsize=9)

    for name, bar, label in zip(result["names"], a.bars, a.labels):
        value = max(result["worst"][name], 1e-16)
        missed = name != CORRECT_NAME and name not in result["caught"]
        if name == CORRECT_NAME:
            color = VERDICT_COLORS[result["verdicts"][name]]
        else:
            color = "#9e9e9e" if missed else VERDICT_COLORS["WRONG"]
        bar.set_width(value)
        bar.set_facecolor(color)
        label.set_x(value * 1.5)
        label.set_text(_("{value:.0e} ({value2}){value3}").format(value=value, value2=result['worst_gradient'][name], value3=_("  missed") if missed else ""))
        label.set_fontweight("bold" if missed else "normal")
    broken = len(BROKEN_BACKWARDS)
    if result["correct_verdict"] == "correct":
        title = _("{caught} of {broken} broken backward passes caught").format(
            caught=len(result["caught"]), broken=broken)
    elif result["correct_verdict"] == "suspicious":
        title = _("{caught} of {broken} broken ones caught; the correct one is "
                  "only suspicious ({error:.0e})").format(
            caught=len(result["caught"]), broken=broken, error=result["worst"][CORRECT_NAME])
    else:
        title = _("the correct one scores {error:.0e} too: only "
                  "{caught} of {broken} broken ones are 10x worse").format(
            error=result["worst"][CORRECT_NAME], caught=len(result["caught"]), broken=broken)
    _title(a.moving_bars, title, fontsize=9.5)
    a.note.set_text(result["note"])
    figure.subplots_adjust(top=0.78 if result["note"] else 0.86)  # room for the note above
    # the overlay follows its axes (the backdrop notices the move and draws the axes again)
    a.moving_bars.set_position(a.ax_bars.get_position())


# ----------------------------------------------------------------------------------------
# Panel 2: the finite-difference step h, in float64 and float32
# ----------------------------------------------------------------------------------------

SWEEP_STEPS = np.logspace(-12, 0, 25)
DTYPES = {"float64": np.float64, "float32": np.float32}


@lru_cache(maxsize=2)
def _sweep(dtype_name):
    return finite_difference_errors(SWEEP_STEPS, DTYPES[dtype_name])


def compute_finite_difference_panel(h=1e-5, dtype="float64"):
    """The relative error of the centered-difference dx at step h, and the whole curve.

    Args:
        h:     the finite-difference step, 1e-12 ... 1
        dtype: "float64" or "float32", the precision the forward pass runs in

    Returns:
        Notice when h is so small that x + h rounds back to x in this precision (the difference
        quotient is then 0 / 2h, not a derivative); otherwise a dict with "h", "dtype",
        "error" at h, "verdict", "steps" and "curves" ({dtype name: errors over steps}),
        "machine_eps" ({dtype name: eps}).
    """
    if dtype not in DTYPES:
        return Notice(_("Unknown precision {dtype!r}; choose float64 or float32.").format(dtype=dtype))
    if not h > 0:
        return Notice(_("The step h must be positive."))
    x = example_batch(8, NUM_FEATURES, seed=0)[0].astype(DTYPES[dtype])
    lost = np.count_nonzero(x + DTYPES[dtype](h) == x)
    if lost:
        spacing = float(np.spacing(np.abs(x)).max())
        return Notice(
            _("In {dtype}, h = {h:.1e} is lost to rounding: for {lost} of the {size} inputs, x + h "
            "rounds back to x itself (the spacing between neighbouring {dtype} numbers near "
            "|x| = {value:.1f} is {spacing:.1e}). The difference quotient there is "
            "0 / 2h = 0, not a derivative. Use a larger h (in {dtype} about "
            "{value2:.0e} is best).").format(dtype=dtype, h=h, lost=lost, size=x.size, value=np.abs(x).max(), spacing=spacing, value2=np.finfo(DTYPES[dtype]).eps ** (1 / 3))
        )
    error = float(finite_difference_errors([h], DTYPES[dtype])[0])
    return {"h": float(h), "dtype": dtype, "error": error, "verdict": verdict(error),
            "steps": SWEEP_STEPS, "curves": {name: _sweep(name) for name in DTYPES},
            "machine_eps": {name: float(np.finfo(t).eps) for name, t in DTYPES.items()}}


CURVE_COLORS = {"float64": "#1f5fa8", "float32": "#d9661f"}


def draw_finite_difference_panel(result):
    """Relative error against h (log-log) for both precisions, slope guides for truncation
    (h^2) and rounding (eps_machine / h), the thresholds, and the current h marked."""
    figure = _build_finite_difference_figure(result)
    update_finite_difference_panel(figure, result)
    return figure


def _build_finite_difference_figure(result):
    """Everything that does not depend on h or the precision chosen (both curves, the guides,
    the thresholds: only ``result``'s "steps" and "curves" are used) and an empty marker for
    the current h; ``update_finite_difference_panel`` fills in the rest, using the artists
    kept in ``figure.artists_to_update``.

    The axes with its ticks, guides, thresholds and words is the still layer, drawn once by
    a ``Backdrop``; the two curves (the chosen one stands out), the legend, the marker and the
    title are on a see-through ``overlay_axes`` over it."""
    import matplotlib.pyplot as plt

    steps = result["steps"]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.13, top=0.91)
    ax.set_xscale("log")
    ax.set_yscale("log")
    a = SimpleNamespace(ax=ax, moving=overlay_axes(ax), curves={})
    for name, errors in result["curves"].items():
        a.curves[name], = a.moving.plot(steps, np.maximum(errors, 1e-16), "o-", color=CURVE_COLORS[name],
                                        ms=3, label=name)
        best = np.finfo(DTYPES[name]).eps ** (1 / 3)
        ax.axvline(best, color=CURVE_COLORS[name], lw=0.8, ls=":", alpha=0.8)
        ax.text(best, 2e-14, _(" ε¹ᐟ³\n ({name})").format(name=name), color=CURVE_COLORS[name], fontsize=7)
    # slope guides, one decade off the curves they follow (on them, the curves would hide them):
    # truncation under the float64 curve, rounding above float64's and below float32's
    large = steps >= 1e-3
    anchor = np.argmin(np.abs(steps - 1e-2))
    truncation = 0.1 * result["curves"]["float64"][anchor] * (steps / steps[anchor]) ** 2
    ax.loglog(steps[large], truncation[large], "k--", lw=0.9)
    ax.text(2.5e-2, truncation[anchor] * 0.05, _("∝ h²\n(truncation)"), fontsize=7.5)
    for name, anchor_h, offset in (("float64", 1e-10, 10.0), ("float32", 1e-5, 0.1)):
        i = np.argmin(np.abs(steps - anchor_h))
        small = (steps <= anchor_h * 100) & (steps >= anchor_h / 100)
        rounding = offset * result["curves"][name][i] * steps[i] / steps
        ax.loglog(steps[small], rounding[small], "--", color=CURVE_COLORS[name], lw=0.9)
    ax.text(2e-10, 3e-3, _("∝ ε/h (rounding)"), fontsize=7.5)  # ε: machine epsilon (plain text: mathtext is slow)
    for threshold in (CORRECT_BELOW, WRONG_ABOVE):
        ax.axhline(threshold, color="#555", lw=0.8, ls="--")
    ax.text(1.5e-12, CORRECT_BELOW * 0.35, _("correct below"), fontsize=7, color="#555")
    ax.text(3e-7, WRONG_ABOVE * 1.6, _("wrong above"), fontsize=7, color="#555")
    a.current, = a.moving.plot([], [], marker="*", ms=16, markeredgecolor="k", zorder=5)
    ax.set_ylim(1e-14, 10)
    _plain_log_ticks(ax.xaxis, range(-12, 1, 2))
    _plain_log_ticks(ax.yaxis, range(-14, 1, 2))
    ax.set_xlabel(_("finite-difference step h"))
    ax.set_ylabel(_("relative error of dx"))
    _fix_label_places(ax, below=21, left=40.5)
    a.backdrop = Backdrop(fig, [ax])
    fig.artists_to_update = a
    return fig


def update_finite_difference_panel(figure, result):
    """Show ``result`` in a figure made by ``draw_finite_difference_panel`` (the panel's redraw)."""
    a = figure.artists_to_update
    for name, curve in a.curves.items():  # the precision chosen stands out
        chosen = name == result["dtype"]
        curve.set_linewidth(2 if chosen else 1)
        curve.set_alpha(1 if chosen else 0.45)
    a.moving.legend(loc="upper right", fontsize=8)  # made anew: a legend copies the lines' styles
    a.current.set_data([result["h"]], [max(result["error"], 1e-16)])
    a.current.set_color(VERDICT_COLORS[result["verdict"]])
    _title(a.moving, _("{dtype}, h = {h:.1e}: relative error {error:.1e} "
                       "({verdict}, by the float64 thresholds)").format(
        dtype=result["dtype"], h=result["h"], error=result["error"],
        verdict=_(result["verdict"])), fontsize=9.5)


PANELS = [
    Panel("gradient check: upstream pattern", compute_pattern_check, draw_pattern_check, [
        Control("pattern", "choice", "random", options=UPSTREAM_PATTERNS,
                description=N_("upstream gradient")),
        Control("batch_size", "int", 8, low=1, high=32, description=N_("batch size N")),
    ], update=update_pattern_check),
    Panel("finite differences: step h and precision", compute_finite_difference_panel,
          draw_finite_difference_panel, [
              Control("h", "log", 1e-5, low=1e-12, high=1.0, step=0.25, description=N_("step h")),
              Control("dtype", "choice", "float64", options=("float64", "float32"),
                      description=N_("precision")),
          ], update=update_finite_difference_panel),
]
