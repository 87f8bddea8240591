"""Notebook 04's panel: how the running estimates converge, and what eval accuracy they give.

The BN layer of a small trained MNIST network (``helpers.running_stats.frozen_bn_layer``) is
frozen, so its input distribution is fixed and its population statistics are known exactly.
The panel replays a stream of training batches through the running-statistics update with the
chosen momentum, batch size and batch order, and plots, batch by batch, the running mean and
variance of one unit against the population values, and the test accuracy the network gets
in eval mode with the running statistics of that moment.
"""

from __future__ import annotations

import numpy as np

from helpers.panels.base import Control, Notice, Panel
from helpers.running_stats import batch_stream, frozen_bn_layer, running_statistics

__all__ = ["PANELS", "compute_running_estimates", "draw_running_estimates"]

STEPS = 200  # batches replayed
EVERY = 5  # accuracy is evaluated after every EVERY-th batch (and after the last)
AVERAGES = ("exponential (momentum)", "cumulative (momentum=None)")
ORDERS = ("shuffled", "sorted by label")


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
        dict for ``draw_running_estimates``, or a Notice
    """
    if batch_size < 2:
        return Notice(
            "A batch of one has no variance: training-mode batch normalization would divide "
            "0 by sqrt(0 + eps), and torch refuses with ValueError \"Expected more than 1 value "
            "per channel when training\". So no running statistics are updated from batches of "
            "one. (In eval mode a single example is fine: it uses the stored statistics.) "
            "Choose a batch size of 2 or more."
        )
    layer = frozen_bn_layer()
    cumulative = average == AVERAGES[1]
    indices = batch_stream(len(layer.train_z), batch_size, steps,
                           "sorted" if order == ORDERS[1] else "shuffled",
                           labels=layer.train_labels, seed=0)
    trace = running_statistics(layer.train_z[indices], None if cumulative else momentum)
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
        label=("cumulative average" if cumulative else f"EMA, momentum {momentum:.3g}")
        + f", batch {batch_size}, {order}",
    )


def draw_running_estimates(result):
    """Three small plots: running mean, running variance (one unit), eval accuracy (all units)."""
    import matplotlib.pyplot as plt

    steps = result["steps"]
    fig, (ax_mean, ax_var, ax_acc) = plt.subplots(1, 3, figsize=(11, 3.3))
    unit = result["unit"]

    mean, var = result["population_mean"], result["population_var"]
    std = np.sqrt(var)
    ax_mean.plot(steps, result["batch_mean"], ".", color="0.7", ms=3, label="batch means")
    ax_mean.plot(steps, result["running_mean"], color="C0", lw=2, label="running mean")
    ax_mean.axhline(mean, color="k", ls="--", lw=1, label="population mean")
    ax_mean.set_ylim(min(0.0, mean) - 2.5 * std, max(0.0, mean) + 2.5 * std)
    ax_mean.set_title(f"unit {unit}: mean", fontsize=10)

    ax_var.plot(steps, result["batch_var_unbiased"], ".", color="0.7", ms=3,
                label="batch variances (unbiased)")
    ax_var.plot(steps, result["running_var"], color="C1", lw=2, label="running variance")
    ax_var.axhline(var, color="k", ls="--", lw=1, label="population variance")
    ax_var.set_ylim(0, max(1.2, 2.5 * var))
    ax_var.set_title(f"unit {unit}: variance", fontsize=10)

    ax_acc.plot(result["checkpoints"], result["accuracy"], color="C2", lw=2,
                label="with the running statistics")
    ax_acc.axhline(result["population_accuracy"], color="k", ls="--", lw=1,
                   label="with the population statistics")
    ax_acc.axhline(result["start_accuracy"], color="C3", ls=":", lw=1,
                   label="with torch's start (0, 1)")
    ax_acc.set_ylim(0.3, 1.0)
    ax_acc.set_title("eval-mode test accuracy (500 images)", fontsize=10)

    ax_var.set_xlabel("training batches seen")
    for ax in (ax_mean, ax_var, ax_acc):
        ax.locator_params(nbins=5)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"{result['label']}.  After {steps[-1]} batches, all 100 units:\n"
        f"mean off by {result['final_mean_error']:.3f} std (average),  "
        f"variance ratio {result['final_var_ratio']:.2f} (median),  "
        f"accuracy {result['accuracy'][-1]:.3f} (population statistics: "
        f"{result['population_accuracy']:.3f})",
        fontsize=9,
    )
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.15, top=0.77, wspace=0.22)
    return fig


PANELS = [
    Panel(
        "running statistics: momentum, batch size, batch order",
        compute_running_estimates,
        draw_running_estimates,
        [
            Control("momentum", "log", 0.1, low=0.001, high=1.0, step=0.1,
                    description="momentum (torch)"),
            Control("batch_size", "int", 60, low=1, high=256, description="batch size",
                    test_values=(1, 2, 60, 256)),
            Control("order", "choice", ORDERS[0], options=ORDERS, description="batch order"),
            Control("average", "choice", AVERAGES[0], options=AVERAGES, description="average"),
        ],
    )
]
