"""Panels of notebook 03, "The backward pass".

- "gradient check: upstream pattern": which broken backward passes a gradient check catches
  with a random, all-ones, one-hot or constant-per-feature upstream gradient.
- "finite differences: step h and precision": the relative error of a centered difference
  against the step h, in float64 and float32 (the U-shaped curve), with the current h marked.

The computations live in ``helpers.backward_demo``; these functions only arrange and draw them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from helpers.backward_demo import (
    BROKEN_BACKWARDS,
    UPSTREAM_PATTERNS,
    example_batch,
    finite_difference_errors,
    gradient_check_errors,
    numerical_bn_gradients,
    upstream_gradient,
)
from helpers.bn import batchnorm_backward
from helpers.gradcheck import CORRECT_BELOW, WRONG_ABOVE, verdict
from helpers.panels.base import Control, Notice, Panel

__all__ = [
    "PANELS",
    "compute_finite_difference_panel",
    "compute_pattern_check",
    "draw_finite_difference_panel",
    "draw_pattern_check",
]

NUM_FEATURES = 3
CORRECT_NAME = "correct (helpers.bn)"
VERDICT_COLORS = {"correct": "#2e7d32", "suspicious": "#d08c00", "WRONG": "#c62828"}


def _plain_log_ticks(axis, exponents):
    """Decade ticks labelled "1e-8" in plain text, no minor ticks (mathtext labels such as
    $10^{-8}$ are slow to lay out, and a redraw should take well under 100 ms)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    axis.set_major_locator(FixedLocator([10.0**e for e in exponents]))
    axis.set_ticklabels([f"1e{e}" if e else "1" for e in exponents])
    axis.set_minor_locator(NullLocator())


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
        pattern:    one of helpers.backward_demo.UPSTREAM_PATTERNS
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
        return Notice(f"Unknown upstream pattern {pattern!r}; choose one of {', '.join(UPSTREAM_PATTERNS)}.")
    if batch_size < 2:
        return Notice("A batch of one example has no variance: in training, BN cannot normalize it "
                      "(x - mean is 0 and the output is beta whatever x is), so there is no "
                      "gradient to check. Choose a batch of at least 2.")
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
        note = ("N = 2: two values normalize to about -1 and +1 whatever they are, so the exact dx "
                "is tiny (of order eps / var)\nand relative errors compare tiny numbers: "
                "even the correct backward is only 'suspicious'.")
    return {"pattern": pattern, "dout": dout, "names": list(backwards), "errors": errors,
            "worst": worst, "worst_gradient": worst_gradient, "verdicts": verdicts,
            "caught": caught, "correct_verdict": verdicts[CORRECT_NAME], "note": note}


def draw_pattern_check(result):
    """Left: the upstream gradient as an image. Right: each backward's largest relative error
    (log scale) against the thresholds: the correct one coloured by its verdict, broken ones red
    when caught and grey when missed."""
    import matplotlib.pyplot as plt

    fig, (ax_dout, ax_bars) = plt.subplots(1, 2, figsize=(9.5, 3.4),
                                           gridspec_kw={"width_ratios": [1, 4.2]})
    dout = result["dout"]
    limit = max(np.abs(dout).max(), 1e-12)
    ax_dout.imshow(dout, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax_dout.set_title(f"upstream dout\n({result['pattern']})", fontsize=9)
    ax_dout.set_xlabel("feature", fontsize=8)
    ax_dout.set_ylabel("example", fontsize=8)
    ax_dout.set_xticks(range(dout.shape[1]))
    ax_dout.set_yticks(range(0, dout.shape[0], max(1, dout.shape[0] // 8)))
    ax_dout.tick_params(labelsize=7)

    names = result["names"]
    positions = np.arange(len(names))[::-1]
    values = [max(result["worst"][name], 1e-16) for name in names]
    colors = [VERDICT_COLORS[result["verdicts"][name]] if name == CORRECT_NAME
              else (VERDICT_COLORS["WRONG"] if name in result["caught"] else "#9e9e9e")
              for name in names]
    ax_bars.barh(positions, values, color=colors, height=0.6)
    for position, name, value in zip(positions, names, values):
        note = ""
        if name != CORRECT_NAME and name not in result["caught"]:
            note = "  missed"
        ax_bars.text(value * 1.5, position, f"{value:.0e} ({result['worst_gradient'][name]}){note}",
                     va="center", fontsize=8, fontweight="bold" if note else "normal")
    ax_bars.set_xscale("log")
    ax_bars.set_xlim(1e-16, 1e5)
    ax_bars.axvspan(1e-16, CORRECT_BELOW, color=VERDICT_COLORS["correct"], alpha=0.07)
    ax_bars.axvspan(WRONG_ABOVE, 1e5, color=VERDICT_COLORS["WRONG"], alpha=0.07)
    for threshold in (CORRECT_BELOW, WRONG_ABOVE):
        ax_bars.axvline(threshold, color="#555", lw=0.8, ls="--")
    ax_bars.set_yticks(positions)
    ax_bars.set_yticklabels(names, fontsize=8.5)
    ax_bars.set_xlabel("largest relative error of dx, dgamma, dbeta (float64, h = 1e-5)", fontsize=8.5)
    _plain_log_ticks(ax_bars.xaxis, range(-16, 3, 2))
    ax_bars.tick_params(axis="x", labelsize=7.5)
    broken = len(BROKEN_BACKWARDS)
    if result["correct_verdict"] == "correct":
        title = f"{len(result['caught'])} of {broken} broken backward passes caught"
    elif result["correct_verdict"] == "suspicious":
        title = (f"{len(result['caught'])} of {broken} broken ones caught; the correct one is "
                 f"only suspicious ({result['worst'][CORRECT_NAME]:.0e})")
    else:
        title = (f"the correct one scores {result['worst'][CORRECT_NAME]:.0e} too: only "
                 f"{len(result['caught'])} of {broken} broken ones are 10x worse")
    ax_bars.set_title(title, fontsize=9.5)
    top = 0.86
    if result["note"]:
        fig.text(0.5, 0.985, result["note"], ha="center", va="top", fontsize=8, color="#8a5a00")
        top = 0.78
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.16, top=top, wspace=0.55)
    return fig


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
        return Notice(f"Unknown precision {dtype!r}; choose float64 or float32.")
    if not h > 0:
        return Notice("The step h must be positive.")
    x = example_batch(8, NUM_FEATURES, seed=0)[0].astype(DTYPES[dtype])
    lost = np.count_nonzero(x + DTYPES[dtype](h) == x)
    if lost:
        spacing = float(np.spacing(np.abs(x)).max())
        return Notice(
            f"In {dtype}, h = {h:.1e} is lost to rounding: for {lost} of the {x.size} inputs, x + h "
            f"rounds back to x itself (the spacing between neighbouring {dtype} numbers near "
            f"|x| = {np.abs(x).max():.1f} is {spacing:.1e}). The difference quotient there is "
            f"0 / 2h = 0, not a derivative. Use a larger h (in {dtype} about "
            f"{np.finfo(DTYPES[dtype]).eps ** (1 / 3):.0e} is best)."
        )
    error = float(finite_difference_errors([h], DTYPES[dtype])[0])
    return {"h": float(h), "dtype": dtype, "error": error, "verdict": verdict(error),
            "steps": SWEEP_STEPS, "curves": {name: _sweep(name) for name in DTYPES},
            "machine_eps": {name: float(np.finfo(t).eps) for name, t in DTYPES.items()}}


def draw_finite_difference_panel(result):
    """Relative error against h (log-log) for both precisions, slope guides for truncation
    (h^2) and rounding (eps_machine / h), the thresholds, and the current h marked."""
    import matplotlib.pyplot as plt

    steps = result["steps"]
    colors = {"float64": "#1f5fa8", "float32": "#d9661f"}
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for name, errors in result["curves"].items():
        chosen = name == result["dtype"]
        ax.loglog(steps, np.maximum(errors, 1e-16), "o-", color=colors[name], ms=3,
                  lw=2 if chosen else 1, alpha=1 if chosen else 0.45, label=name)
        best = np.finfo(DTYPES[name]).eps ** (1 / 3)
        ax.axvline(best, color=colors[name], lw=0.8, ls=":", alpha=0.8)
        ax.text(best, 2e-14, f" eps$^{{1/3}}$\n ({name})", color=colors[name], fontsize=7)
    # slope guides, anchored on the float64 curve (truncation) and on each curve (rounding)
    large = steps >= 1e-3
    anchor = np.argmin(np.abs(steps - 1e-2))
    truncation = result["curves"]["float64"][anchor] * (steps / steps[anchor]) ** 2
    ax.loglog(steps[large], truncation[large], "k--", lw=0.8)
    ax.text(2e-2, truncation[anchor] * 0.1, r"truncation $\propto h^2$", fontsize=8)
    for name, anchor_h in (("float64", 1e-10), ("float32", 1e-5)):
        i = np.argmin(np.abs(steps - anchor_h))
        small = (steps <= anchor_h * 100) & (steps >= anchor_h / 100)
        rounding = result["curves"][name][i] * steps[i] / steps
        ax.loglog(steps[small], rounding[small], "--", color=colors[name], lw=0.8)
    ax.text(3e-12, 2e-5, r"rounding $\propto \epsilon_{machine}/h$", fontsize=8)
    for threshold in (CORRECT_BELOW, WRONG_ABOVE):
        ax.axhline(threshold, color="#555", lw=0.8, ls="--")
    ax.text(1.5e-12, CORRECT_BELOW * 0.35, "correct below", fontsize=7, color="#555")
    ax.text(1.5e-12, WRONG_ABOVE * 1.6, "wrong above", fontsize=7, color="#555")
    ax.plot([result["h"]], [max(result["error"], 1e-16)], marker="*", ms=16,
            color=VERDICT_COLORS[result["verdict"]], markeredgecolor="k", zorder=5)
    ax.set_ylim(1e-14, 10)
    _plain_log_ticks(ax.xaxis, range(-12, 1, 2))
    _plain_log_ticks(ax.yaxis, range(-14, 1, 2))
    ax.set_xlabel("finite-difference step h")
    ax.set_ylabel("relative error of dx")
    ax.set_title(f"{result['dtype']}, h = {result['h']:.1e}: relative error {result['error']:.1e} "
                 f"({result['verdict']}, by the float64 thresholds)", fontsize=9.5)
    ax.legend(loc="upper right", fontsize=8)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.13, top=0.91)
    return fig


PANELS = [
    Panel("gradient check: upstream pattern", compute_pattern_check, draw_pattern_check, [
        Control("pattern", "choice", "random", options=UPSTREAM_PATTERNS,
                description="upstream gradient"),
        Control("batch_size", "int", 8, low=1, high=32, description="batch size N"),
    ]),
    Panel("finite differences: step h and precision", compute_finite_difference_panel,
          draw_finite_difference_panel, [
              Control("h", "log", 1e-5, low=1e-12, high=1.0, step=0.25, description="step h"),
              Control("dtype", "choice", "float64", options=("float64", "float32"),
                      description="precision"),
          ]),
]
