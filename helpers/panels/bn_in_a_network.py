"""Panel of notebook 06 (BN in a real network).

``network: learning rate, initial scale, BN placement``: the paper's Figure 1 network with and
without BN, trained on MNIST for ``SWEEP_STEPS`` steps at the chosen learning rate and initial
weight scale; test accuracy and training loss against steps, and each run's outcome in words
("trains", "stalled", "diverged between steps ...").

Every setting's two runs were trained once, by ``python -m tools.record_panel_runs
bn_in_a_network``, and ship in ``data/bn_in_a_network_panel_runs.json``
(``helpers.lessons.bn_in_a_network.load_panel_runs``): moving a control only reads them, it never
trains. They are the runs the notebook's sweeps train (same settings, seed 0).

A slider move redraws the kept figure in place (``update_learning_curves``). The two plots'
axes (ticks, labels, reference lines) are drawn once and then pasted back by a ``Backdrop``
(``helpers.backdrop``), the curves being on see-through ``overlay_axes``; the loss
plot's range widens for runs whose losses leave 0.1 to 5, and the Backdrop is then drawn again.
"""

from __future__ import annotations

import numpy as np

from helpers.backdrop import Backdrop, overlay_axes
from helpers.data import DataFileError
from helpers.i18n import N_, _
from helpers.lessons.bn_in_a_network import (
    BASE_INIT_STD,
    BASE_LR,
    INIT_STDS,
    LEARNING_RATES,
    SWEEP_EVAL_SIZE,
    SWEEP_STEPS,
    describe,
    recorded_panel_run,
)
from helpers.panel import Control, Notice, Panel

__all__ = ["PANELS", "compute_learning_curves", "draw_learning_curves", "update_learning_curves"]

PLAIN_COLOR, BN_COLOR = "#b0413e", "#2a6f97"
#: The BN placements (the values the lesson's runs are keyed by) and how the legend names them.
PLACEMENTS = (N_("before"), N_("after"))
PLACEMENT_NAMES = {"before": N_("BN before the sigmoid"), "after": N_("BN after the sigmoid")}


def compute_learning_curves(lr=BASE_LR, init_std=BASE_INIT_STD, bn_position="before"):
    """The plain and the BN network at one learning rate and initial weight scale, as recorded
    in ``data/bn_in_a_network_panel_runs.json`` (nothing is trained: every setting of the
    panel was trained once by ``python -m tools.record_panel_runs bn_in_a_network``, the same
    runs as the notebook's sweeps).

    Returns a dict:
        plain, bn:  the two ``helpers.lessons.bn_in_a_network.Run`` (SWEEP_STEPS steps, seed 0)
        lr, init_std, bn_position
    or a Notice if the record cannot be read or has no run for these settings.
    """
    try:
        plain = recorded_panel_run(False, lr, init_std)
        bn = recorded_panel_run(True, lr, init_std, bn_position)
    except DataFileError as error:
        return Notice(_("The recorded runs of this panel could not be read: {error}").format(error=error))
    if plain is None or bn is None:
        return Notice(_("No recorded run for learning rate {lr:g}, initial scale {init_std:g}, BN "
                        "{bn_position} the sigmoid: the panel trains nothing itself; choose one of "
                        "its settings.").format(lr=lr, init_std=init_std,
                                                bn_position=_(bn_position) if isinstance(bn_position, str)
                                                else bn_position))
    return dict(plain=plain, bn=bn, lr=lr, init_std=init_std, bn_position=bn_position)


def draw_learning_curves(result):
    """Two small plots: test accuracy and training loss (log scale) against steps; each run's
    outcome in words underneath."""
    figure = _build_learning_curves()
    update_learning_curves(figure, result)
    return figure


def _build_learning_curves():
    """The figure without any run in it: axes, reference lines, labels, and an empty line (a
    hidden marker for a diverged run) per network, kept in ``figure._panel_artists``. The two
    axes are the still layer (a ``Backdrop`` draws them once); the curves are on see-through
    ``overlay_axes``."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, (ax_accuracy, ax_loss) = plt.subplots(1, 2, figsize=(9.5, 3.7))
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.33, wspace=0.28)
    ax_loss.set_yscale("log")
    moving_accuracy, moving_loss = overlay_axes(ax_accuracy), overlay_axes(ax_loss)
    artists = {}
    for name, color in (("plain", PLAIN_COLOR), ("bn", BN_COLOR)):
        artists[name] = dict(
            accuracy=moving_accuracy.plot([], [], "-o", color=color, ms=3)[0],
            loss=moving_loss.plot([], [], "-o", color=color, ms=3)[0],
            # where a diverged run stopped: a cross on its last accuracy, a line on the loss plot
            stop_mark=moving_accuracy.plot([], [], "x", color=color, ms=10, mew=2)[0],
            stop_line=moving_loss.axvline(0, color=color, ls=":", visible=False),
        )

    ax_accuracy.axhline(10, color="gray", lw=0.8, ls="--")
    ax_accuracy.text(SWEEP_STEPS, 11, _("chance"), color="gray", ha="right", va="bottom", fontsize=8)
    ax_accuracy.set(xlabel=_("training step"), ylabel=_("test accuracy (%, {SWEEP_EVAL_SIZE:,} images)").format(SWEEP_EVAL_SIZE=SWEEP_EVAL_SIZE),
                    ylim=(0, 100), xlim=(0, SWEEP_STEPS))

    ax_loss.yaxis.set_major_locator(LogLocator(base=10))
    ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    ax_loss.yaxis.set_minor_formatter(NullFormatter())
    ax_loss.axhline(np.log(10), color="gray", lw=0.8, ls="--")
    ax_loss.text(SWEEP_STEPS, np.log(10) * 1.08, _("ln 10: guessing"), color="gray", ha="right",
                 va="bottom", fontsize=8)
    ax_loss.set(xlabel=_("training step"), ylabel=_("training loss (log scale)"), xlim=(0, SWEEP_STEPS))

    artists["legend"] = fig.legend([artists["plain"]["accuracy"], artists["bn"]["accuracy"]],
                                   ["", ""], loc="lower left", bbox_to_anchor=(0.06, 0.0),
                                   fontsize=8.5, frameon=False)
    artists["title"] = fig.suptitle("", fontsize=9)
    artists["backdrop"] = Backdrop(fig, [ax_accuracy, ax_loss])
    fig._panel_artists = artists
    return fig


def update_learning_curves(figure, result):
    """Put a result's two runs into a figure made by ``draw_learning_curves`` (the panel's
    ``update``: the figure is redrawn in place, its axes and labels stay)."""
    artists = figure._panel_artists
    placement = _(PLACEMENT_NAMES[result["bn_position"]])
    legend_texts = artists["legend"].get_texts()
    for name, label, text in zip(("plain", "bn"), (_("no BN"), placement), legend_texts):
        _show_run(artists[name], result[name])
        text.set_text(_("{label}: {value}").format(label=label, value=describe(result[name])))

    limits = _loss_limits(result["plain"], result["bn"])
    if artists["backdrop"].redraw_if_changed(limits):  # the loss plot's ticks change
        artists["plain"]["loss"].axes.set_ylim(*limits)
    artists["title"].set_text(_("learning rate {lr:g}, initial weights N(0, {init_std:g}²), {steps} steps "
                                "(recorded runs, the same as the notebook's sweeps)").format(
                                    lr=result["lr"], init_std=result["init_std"], steps=SWEEP_STEPS))


def _show_run(lines, run):
    """One run's accuracy and loss curves, and where it stopped if it diverged."""
    history = run.history
    lines["accuracy"].set_data(history.steps, 100 * history.test_accuracy)
    lines["loss"].set_data(history.steps[1:], history.train_loss[1:])
    last = history.steps[-1]
    if history.diverged:
        lines["stop_mark"].set_data([last], [100 * history.test_accuracy[-1]])
    else:
        lines["stop_mark"].set_data([], [])
    lines["stop_line"].set_xdata([last, last])
    lines["stop_line"].set_visible(bool(history.diverged))


def _loss_limits(*runs):
    """The loss plot's vertical range: 0.1 to 5, widened to every finite loss of the runs."""
    losses = np.concatenate([run.history.train_loss[1:] for run in runs])
    losses = losses[np.isfinite(losses) & (losses > 0)]
    return min([0.1, *(losses / 1.5)]), max([5.0, *(losses * 1.5)])


PANELS = [
    Panel(
        "network: learning rate, initial scale, BN placement",
        compute_learning_curves,
        draw_learning_curves,
        update=update_learning_curves,
        controls=[
            Control("lr", "choice", BASE_LR, options=LEARNING_RATES, description=N_("learning rate"),
                    test_values=(LEARNING_RATES[-1],)),
            Control("init_std", "choice", BASE_INIT_STD, options=INIT_STDS,
                    description=N_("initial weight std"), test_values=(BASE_INIT_STD,)),
            Control("bn_position", "choice", "before", options=PLACEMENTS,
                    description=N_("BN placement (vs the sigmoid)"), test_values=("after",)),
        ],
    )
]
