"""Notebook 04's panel: how the running estimates converge, and what eval accuracy they give.

The BN layer of a small trained MNIST network (``helpers.lessons.inference_statistics.frozen_bn_layer``,
its weights read from ``data/inference_statistics_trained_mlp.npz``: nothing is trained) is
frozen, so its input distribution is fixed and its population statistics are known exactly.
The panel replays a stream of training batches through the running-statistics update with the
chosen momentum, batch size and batch order, and plots, batch by batch, the running mean and
variance of one unit against the population values, and the test accuracy the network gets
in eval mode with the running statistics of that moment.

A slider move redraws the kept figure in place (``update_running_estimates``). What no
control changes (axes, ticks, legends, labels) is drawn once and then pasted back by a
``Backdrop`` (``helpers.backdrop``): matplotlib would otherwise
render every tick label and legend entry again on every move.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from helpers.backdrop import Backdrop, overlay_axes
from helpers.data import DataFileError
from helpers.i18n import N_, _
from helpers.lessons.inference_statistics import batch_stream, frozen_bn_layer, running_statistics
from helpers.panel import Control, Notice, Panel

__all__ = ["PANELS", "compute_running_estimates", "draw_running_estimates",
           "update_running_estimates"]

STEPS = 200  # batches replayed
EVERY = 5  # accuracy is evaluated after every EVERY-th batch (and after the last)
# the dropdowns' values (the code compares them; the dropdowns show them translated)
AVERAGES = (N_("exponential (momentum)"), N_("cumulative (momentum=None)"))
ORDERS = (N_("shuffled"), N_("sorted by label"))


def _shown_unit(layer) -> int:
    """The unit whose population statistics are farthest from torch's starting values (mean 0
    in its own standard deviations, variance 1 on a log scale): its start-up is easiest to see."""
    mean, var = layer.population_mean, layer.population_var
    return int(np.argmax(np.abs(mean) / np.sqrt(var) + np.abs(np.log(var))))


def compute_running_estimates(momentum=0.1, batch_size=60, order="shuffled",
                              average="exponential (momentum)", steps=STEPS):
    """Replay ``steps`` training batches through BN's running-statistics update.

    Args:
        momentum:   weight of each new batch (torch's convention); ignored for the cumulative average
        batch_size: examples per batch (1 gives a Notice: training-mode BN needs 2 or more)
        order:      "shuffled" (i.i.d.-like batches) or "sorted by label" (non-i.i.d.)
        average:    one of AVERAGES
        steps:      number of batches

    Returns:
        dict for ``draw_running_estimates`` (the same object for the same settings: the last
        32 are remembered, so going back to one is instant; do not modify it), or a Notice
    """
    if batch_size < 2:
        return Notice(
            _("A batch of one has no variance: training-mode batch normalization would divide "
            "0 by sqrt(0 + eps), and torch refuses with ValueError \"Expected more than 1 value "
            "per channel when training\". So no running statistics are updated from batches of "
            "one. (In eval mode a single example is fine: it uses the stored statistics.) "
            "Choose a batch size of 2 or more.")
        )
    cumulative = average == AVERAGES[1]
    try:
        return _replay(None if cumulative else float(momentum), int(batch_size), order, int(steps))
    except DataFileError as error:
        return Notice(_("The MNIST file or the recorded network could not be read, so there is no "
                        "trained network to replay: {error}").format(error=error))


@lru_cache(maxsize=32)
def _replay(momentum, batch_size, order, steps):
    """``compute_running_estimates`` for a batch size of 2 or more; momentum None is the
    cumulative average."""
    layer = frozen_bn_layer(recorded=True)  # the recorded weights: no training
    indices = batch_stream(len(layer.train_z), batch_size, steps,
                           "sorted" if order == ORDERS[1] else "shuffled",
                           labels=layer.train_labels, seed=0)
    trace = running_statistics(layer.train_z[indices], momentum)
    checkpoints = np.unique(np.r_[np.arange(EVERY - 1, steps, EVERY), steps - 1])
    accuracy = layer.accuracy(trace.running_mean[checkpoints], trace.running_var[checkpoints])
    unit = _shown_unit(layer)
    population_std = np.sqrt(layer.population_var)
    n = batch_size
    return dict(
        steps=np.arange(1, steps + 1),
        unit=unit,
        batch_mean=trace.batch_mean[:, unit],
        batch_var_unbiased=trace.batch_var[:, unit] * n / (n - 1),
        running_mean=trace.running_mean[:, unit],
        running_var=trace.running_var[:, unit],
        population_mean=float(layer.population_mean[unit]),
        population_var=float(layer.population_var[unit]),
        checkpoints=checkpoints + 1,
        accuracy=accuracy,
        population_accuracy=layer.accuracy(layer.population_mean, layer.population_var),
        start_accuracy=layer.accuracy(np.zeros_like(layer.population_mean),
                                      np.ones_like(layer.population_var)),
        # over all units, after the last batch: error of the mean in population standard
        # deviations, and the ratio of running to population variance
        final_mean_error=float(np.mean(np.abs(trace.running_mean[-1] - layer.population_mean)
                                       / population_std)),
        final_var_ratio=float(np.median(trace.running_var[-1] / layer.population_var)),
        label=(_("cumulative average") if momentum is None
               else _("EMA, momentum {momentum}").format(momentum=f"{momentum:.3g}"))
        + _(", batch {batch_size}, {order}").format(batch_size=batch_size, order=_(order)),
    )


def draw_running_estimates(result):
    """Three small plots: running mean, running variance (one unit), eval accuracy (all units),
    under a headline with the settings and, for all units after the last batch, how far the
    running statistics are from the population's and the accuracy they give."""
    figure = _build_running_estimates()
    update_running_estimates(figure, result)
    return figure


# What the headline says about all units after the last batch: a label (drawn once) and the
# value (drawn on every move), one above each plot.
SUMMARIES = {
    "final_mean_error": (N_("mean off by (in std, average):  "), "{:.3f}"),
    "final_var_ratio": (N_("variance ratio (median):  "), "{:.2f}"),
    "final_accuracy": (N_("accuracy (population statistics: {population_accuracy:.3f}):  "), "{:.3f}"),
}


def _build_running_estimates():
    """The figure without a result, in two layers.

    The still layer: three axes with their ticks, titles and legends, and the headline's
    fixed words; a ``Backdrop`` draws it once and pastes it back on later draws. The moving
    layer: on top of each still axes a see-through ``overlay_axes`` with the lines, and the
    headline's values. The artists that change are kept in ``figure._panel_artists``.
    """
    import matplotlib.pyplot as plt

    fig, still_axes = plt.subplots(1, 3, figsize=(11, 3.7))
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.30, top=0.79, wspace=0.22)
    ax_mean, ax_var, ax_acc = still_axes
    moving_mean, moving_var, moving_acc = (overlay_axes(ax) for ax in still_axes)
    reference = dict(color="k", ls="--", lw=1)
    artists = dict(
        batch_mean=moving_mean.plot([], [], ".", color="0.7", ms=3)[0],
        running_mean=moving_mean.plot([], [], color="C0", lw=2)[0],
        population_mean=moving_mean.axhline(0, **reference),
        batch_var=moving_var.plot([], [], ".", color="0.7", ms=3)[0],
        running_var=moving_var.plot([], [], color="C1", lw=2)[0],
        population_var=moving_var.axhline(0, **reference),
        accuracy=moving_acc.plot([], [], color="C2", lw=2)[0],
        population_accuracy=moving_acc.axhline(0, **reference),
        start_accuracy=moving_acc.axhline(0, color="C3", ls=":", lw=1),
        still_axes=still_axes,
    )
    legends = {
        ax_mean: {N_("batch means"): "batch_mean", N_("running mean"): "running_mean",
                  N_("population mean"): "population_mean"},
        ax_var: {N_("batch variances (unbiased)"): "batch_var", N_("running variance"): "running_var",
                 N_("population variance"): "population_var"},
        ax_acc: {N_("with the running statistics"): "accuracy",
                 N_("with the population statistics"): "population_accuracy",
                 N_("with torch's start (0, 1)"): "start_accuracy"},
    }
    for ax, entries in legends.items():
        ax.legend([artists[name] for name in entries.values()], [_(label) for label in entries], fontsize=7,
                  loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
        ax.set_xlabel(_("training batches seen"), fontsize=8)
        ax.locator_params(nbins=5)
        ax.grid(alpha=0.3)
    ax_acc.set_ylim(0.3, 1.0)
    ax_acc.set_title(_("eval-mode test accuracy (500 images)"), fontsize=10)

    # the headline: the settings, then above each plot a summary, label | value, ending
    # near the plot's right edge
    text = dict(fontsize=9, va="baseline")
    artists["settings"] = fig.text(0.5, 0.955, "", ha="right", **text)
    artists["after"] = fig.text(0.5, 0.955, "", ha="left", **text)
    for name, ax in zip(SUMMARIES, still_axes):
        junction = ax.get_position().x1 - 0.045
        artists[name + "_label"] = fig.text(junction, 0.895, "", ha="right", **text)
        artists[name] = fig.text(junction, 0.895, "", ha="left", **text)
    still_texts = [artists[name] for name in ("after", *(name + "_label" for name in SUMMARIES))]
    artists["backdrop"] = Backdrop(fig, [*still_axes, *still_texts])
    fig._panel_artists = artists
    return fig


def update_running_estimates(figure, result):
    """Put a result into a figure made by ``draw_running_estimates`` (the panel's ``update``:
    the lines and the headline's values change; the still layer only if the unit shown does)."""
    artists = figure._panel_artists
    steps = result["steps"]
    artists["batch_mean"].set_data(steps, result["batch_mean"])
    artists["running_mean"].set_data(steps, result["running_mean"])
    artists["batch_var"].set_data(steps, result["batch_var_unbiased"])
    artists["running_var"].set_data(steps, result["running_var"])
    artists["accuracy"].set_data(result["checkpoints"], result["accuracy"])
    for name in ("population_mean", "population_var", "population_accuracy", "start_accuracy"):
        artists[name].set_ydata([result[name]] * 2)
    artists["settings"].set_text(_("{sentence}.").format(sentence=result["label"]))
    values = {**result, "final_accuracy": result["accuracy"][-1]}
    for name, (_label, value_format) in SUMMARIES.items():
        artists[name].set_text(value_format.format(values[name]))
    _show_still_part(figure, result)


def _show_still_part(figure, result):
    """The still layer's part of a result: the unit shown, its limits, the number of batches,
    the population accuracy. They are the same for every setting of the panel's controls, so
    the backdrop is drawn once; should they change, it is drawn again."""
    artists = figure._panel_artists
    still = {name: result[name] for name in ("unit", "population_mean", "population_var",
                                             "population_accuracy")}
    still["steps"] = int(result["steps"][-1])
    if not artists["backdrop"].redraw_if_changed(still):
        return
    ax_mean, ax_var, ax_acc = artists["still_axes"]
    mean, std = still["population_mean"], np.sqrt(still["population_var"])
    ax_mean.set_ylim(min(0.0, mean) - 2.5 * std, max(0.0, mean) + 2.5 * std)
    ax_var.set_ylim(0, max(1.2, 2.5 * still["population_var"]))
    margin = 0.05 * still["steps"]
    for ax in (ax_mean, ax_var, ax_acc):
        ax.set_xlim(1 - margin, still["steps"] + margin)
    ax_mean.set_title(_("unit {unit}: mean").format(unit=still['unit']), fontsize=10)
    ax_var.set_title(_("unit {unit}: variance").format(unit=still['unit']), fontsize=10)
    artists["after"].set_text(_("  After {steps} batches, all 100 units:").format(steps=still['steps']))
    for name, (label, _format) in SUMMARIES.items():
        artists[name + "_label"].set_text(_(label).format(**still))


PANELS = [
    Panel(
        "running statistics: momentum, batch size, batch order",
        compute_running_estimates,
        draw_running_estimates,
        [
            Control("momentum", "log", 0.1, low=0.001, high=1.0, step=0.1,
                    description=N_("momentum (torch)"),
                    active_when={"average": (AVERAGES[0],)}),  # the cumulative average has none
            Control("batch_size", "int", 60, low=1, high=256, description=N_("batch size"),
                    test_values=(1, 2, 60, 256)),
            Control("order", "choice", ORDERS[0], options=ORDERS, description=N_("batch order")),
            Control("average", "choice", AVERAGES[0], options=AVERAGES, description=N_("average")),
        ],
        update=update_running_estimates,
    )
]
