"""Panel of notebook 06 (BN in a real network).

``network: learning rate, initial scale, BN placement``: the paper's Figure 1 network with and
without BN, trained on MNIST for ``SWEEP_STEPS`` steps at the chosen learning rate and initial
weight scale; test accuracy and training loss against steps, and each run's outcome in words
("trains", "stalled", "diverged between steps ...").

The runs come from ``helpers.experiments``: the notebook's sweeps have already made most of
them, so moving a control usually just reads them. A setting not run yet is trained on the spot
(two runs of a few hundred steps, a second or two) and remembered.
"""

from __future__ import annotations

import time

import numpy as np

from helpers.data import DataFileError
from helpers.experiments import (
    BASE_INIT_STD,
    BASE_LR,
    INIT_STDS,
    LEARNING_RATES,
    SWEEP_EVAL_SIZE,
    SWEEP_RECORD_EVERY,
    SWEEP_STEPS,
    cached_run,
    describe,
    run_figure1,
)
from helpers.panels.base import Control, Notice, Panel

__all__ = ["PANELS", "compute_learning_curves", "draw_learning_curves"]

PLAIN_COLOR, BN_COLOR = "#b0413e", "#2a6f97"


def compute_learning_curves(lr=BASE_LR, init_std=BASE_INIT_STD, bn_position="before"):
    """The plain and the BN network at one learning rate and initial weight scale.

    Returns a dict:
        plain, bn:      the two ``helpers.experiments.Run`` (SWEEP_STEPS steps, seed 0)
        lr, init_std, bn_position
        fresh_seconds:  seconds spent training runs that were not remembered yet (0 if none)
    or a Notice if the MNIST file cannot be read.
    """
    settings = dict(steps=SWEEP_STEPS, lr=lr, init_std=init_std, record_every=SWEEP_RECORD_EVERY,
                    eval_size=SWEEP_EVAL_SIZE, tracked_units=())
    started = time.perf_counter()
    needed_training = (cached_run(False, **settings) is None
                       or cached_run(True, bn_position=bn_position, **settings) is None)
    try:
        plain = run_figure1(False, progress=False, **settings)
        bn = run_figure1(True, bn_position=bn_position, progress=False, **settings)
    except DataFileError as error:
        return Notice(f"The MNIST file could not be read, so nothing can be trained: {error}")
    return dict(plain=plain, bn=bn, lr=lr, init_std=init_std, bn_position=bn_position,
                fresh_seconds=time.perf_counter() - started if needed_training else 0.0)


def _plot_run(ax_accuracy, ax_loss, run, color, label):
    history = run.history
    ax_accuracy.plot(history.steps, 100 * history.test_accuracy, "-o", color=color, ms=3,
                     label=f"{label}: {describe(run)}")
    losses = history.train_loss[1:]
    ax_loss.plot(history.steps[1:], losses, "-o", color=color, ms=3)
    if history.diverged:
        last = history.steps[-1]
        ax_accuracy.plot([last], [100 * history.test_accuracy[-1]], "x", color=color, ms=10, mew=2)
        ax_loss.axvline(last, color=color, ls=":")


def draw_learning_curves(result):
    """Two small plots: test accuracy and training loss (log scale) against steps; each run's
    outcome in words underneath."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, (ax_accuracy, ax_loss) = plt.subplots(1, 2, figsize=(9.5, 3.7))
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.33, wspace=0.28)
    placement = f"BN {result['bn_position']} the sigmoid"
    _plot_run(ax_accuracy, ax_loss, result["plain"], PLAIN_COLOR, "no BN")
    _plot_run(ax_accuracy, ax_loss, result["bn"], BN_COLOR, placement)

    ax_accuracy.axhline(10, color="gray", lw=0.8, ls="--")
    ax_accuracy.text(SWEEP_STEPS, 11, "chance", color="gray", ha="right", va="bottom", fontsize=8)
    ax_accuracy.set(xlabel="training step", ylabel=f"test accuracy (%, {SWEEP_EVAL_SIZE:,} images)",
                    ylim=(0, 100), xlim=(0, SWEEP_STEPS))

    losses = np.concatenate([r.history.train_loss[1:] for r in (result["plain"], result["bn"])])
    losses = losses[np.isfinite(losses) & (losses > 0)]
    ax_loss.set_yscale("log")
    ax_loss.set_ylim(min([0.1, *(losses / 1.5)]), max([5.0, *(losses * 1.5)]))
    ax_loss.yaxis.set_major_locator(LogLocator(base=10))
    ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax_loss.yaxis.set_minor_formatter(NullFormatter())
    ax_loss.axhline(np.log(10), color="gray", lw=0.8, ls="--")
    ax_loss.text(SWEEP_STEPS, np.log(10) * 1.08, "ln 10: guessing", color="gray", ha="right",
                 va="bottom", fontsize=8)
    ax_loss.set(xlabel="training step", ylabel="training loss (log scale)", xlim=(0, SWEEP_STEPS))

    handles, labels = ax_accuracy.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.06, 0.0), fontsize=8.5,
               frameon=False)
    source = (f"trained just now ({result['fresh_seconds']:.1f} s) and remembered"
              if result["fresh_seconds"] else "from the runs the notebook already made")
    fig.suptitle(f"learning rate {result['lr']:g}, initial weights N(0, {result['init_std']:g}²), "
                 f"{SWEEP_STEPS} steps: {source}", fontsize=9)
    return fig


PANELS = [
    Panel(
        "network: learning rate, initial scale, BN placement",
        compute_learning_curves,
        draw_learning_curves,
        [
            Control("lr", "choice", BASE_LR, options=LEARNING_RATES, description="learning rate",
                    test_values=(LEARNING_RATES[-1],)),
            # (each new setting trains two short runs: the tests try the largest learning rate
            # and the other placement, and leave the initial scale at its default)
            Control("init_std", "choice", BASE_INIT_STD, options=INIT_STDS,
                    description="initial weight std", test_values=(BASE_INIT_STD,)),
            Control("bn_position", "choice", "before", options=("before", "after"),
                    description="BN placement (vs the sigmoid)", test_values=("after",)),
        ],
    )
]
