"""Notebook 07's panels: noisy BN, the loss along the gradient, and BN's batch-size dependence.

Every setting's runs were trained once, by ``python -m tools.record_panel_runs why_bn_works``,
and ship in ``data/why_bn_works_panel_runs.json`` (``helpers.lessons.why_bn_works.load_panel_runs``):
the panels only read them, they never train. They are the runs the notebook trains for the same
settings (seed 0, default lengths).

The panels redraw their kept figure in place (``update_*``). Axes whose ranges stay put from
one move to the next (the noisy-BN accuracy plot, the batch-size error plot) are drawn once
and then pasted back by a ``Backdrop`` (``helpers.backdrop``), their curves being on a
see-through ``overlay_axes``; the Backdrop draws them again only when their range changes.
"""

from __future__ import annotations

import numpy as np

from helpers.backdrop import Backdrop, overlay_axes
from helpers.data import DataFileError
from helpers.i18n import N_, _
from helpers.lessons import why_bn_works as why
from helpers.panel import Control, Notice, Panel

__all__ = [
    "PANELS",
    "COLORS",
    "compute_batch_size",
    "compute_gradient_walk",
    "compute_noisy_bn",
    "draw_batch_size",
    "draw_batch_size_sweep",
    "draw_gradient_walk",
    "draw_landscape",
    "draw_noisy_bn",
    "noisy_bn_result",
    "recorded_noisy_bn_result",
    "update_batch_size",
    "update_gradient_walk",
    "update_noisy_bn",
]

COLORS = {"none": "#7f7f7f", "batch": "#1f77b4", "noisy": "#ff7f0e", "group": "#2ca02c",
          "layer": "#9467bd"}
LABELS = {"none": N_("no BN"), "batch": "BN", "noisy": N_("noisy BN"), "group": "GroupNorm",
          "layer": "LayerNorm"}
MODEL_NAMES = {"mlp": N_("Figure 1 MLP (BatchNorm1d)"), "cnn": N_("small CNN (BatchNorm2d)")}
MODEL_KINDS = (N_("mlp"), N_("cnn"))  # the dropdown's options, shown translated


def _redraw_still_axes_if_moved(artists):
    """The still axes (``artists["still_axes"]``, drawn by ``artists["backdrop"]``) are drawn
    again only when their ranges change (call after fitting the axes to new data)."""
    artists["backdrop"].redraw_if_changed([(ax.get_xlim(), ax.get_ylim())
                                           for ax in artists["still_axes"]])


def _spines_on_top(overlay, ax):
    """Draw ``ax``'s spines on its ``overlay`` instead, over the data as in a plain figure
    (the still layer is drawn under the overlays)."""
    overlay.set_axis_on()
    overlay.patch.set_visible(False)
    overlay.xaxis.set_visible(False)
    overlay.yaxis.set_visible(False)
    for name, spine in ax.spines.items():
        overlay.spines[name].set_visible(spine.get_visible())
        spine.set_visible(False)


def _style():
    """The look of this notebook's figures. Titles sit just above their axes (axes.titley 1.0,
    where matplotlib would put them anyway: no tick labels on top); fixing their place saves
    matplotlib looking for overlaps at every redraw."""
    import matplotlib.pyplot as plt

    return plt.rc_context({"font.size": 9, "axes.titlesize": 9, "axes.titley": 1.0,
                           "axes.spines.top": False, "axes.spines.right": False,
                           "legend.fontsize": 8, "legend.frameon": False})


# ----------------------------------------------------------------------------------------
# 1. Noisy BN
# ----------------------------------------------------------------------------------------


def noisy_bn_result(noise=why.NOISE, seeds=(0,), steps=why.MLP_STEPS, progress=False) -> dict:
    """Train (or look up) the MLP without BN, with BN and with noisy BN for each seed.

    Returns dict: noise, seeds, runs {norm: [MLPRun per seed]} for norm in none / batch /
    noisy (noisy is the BN run when noise is 0), and shift {norm: mean per-step shift over
    seeds} (``MLPRun.step_shift``).
    """
    runs = {norm: [why.train_mlp(norm, noise=noise, seed=seed, steps=steps, progress=progress)
                   for seed in seeds]
            for norm in ("none", "batch", "noisy")}
    shift = {norm: float(np.mean([run.step_shift() for run in runs[norm]])) for norm in runs}
    return dict(noise=float(noise), seeds=tuple(seeds), runs=runs, shift=shift)


NOISE_STEP = why.NOISE_STEP  # the slider's step (0.25); other values are rounded to it


def recorded_noisy_bn_result(noise) -> dict:
    """``noisy_bn_result(noise)`` for seed 0 as recorded in ``data/why_bn_works_panel_runs.json``
    (``why.load_panel_runs``): the same dict, read instead of trained. KeyError for a noise
    the record does not hold (it holds the slider's values)."""
    recorded = why.load_panel_runs().noisy
    noise = float(noise)
    runs = {"none": [recorded["none"]], "batch": [recorded["batch"]],
            "noisy": [recorded["batch"] if noise == 0 else recorded[("noisy", noise)]]}
    shift = {norm: float(np.mean([run.step_shift() for run in runs[norm]])) for norm in runs}
    return dict(noise=noise, seeds=(0,), runs=runs, shift=shift)


def compute_noisy_bn(noise=why.NOISE):
    """The panel's computation: ``noisy_bn_result`` for seed 0, with the noise rounded to the
    slider's steps of 0.25, read from the recorded runs (never trains; never raises for
    0 <= noise <= 2)."""
    if not 0 <= noise <= 2:
        return Notice(_("The noise strength must be between 0 and 2 (got {noise}).").format(noise=noise))
    rounded = round(noise / NOISE_STEP) * NOISE_STEP
    try:
        return recorded_noisy_bn_result(rounded)
    except DataFileError as error:
        return _no_record_notice(error)
    except KeyError:
        return Notice(_("No recorded run for noise {noise:g}: the panel trains nothing itself.").format(
            noise=rounded))


def _no_record_notice(error) -> Notice:
    return Notice(_("The recorded runs of this panel could not be read: {error}").format(error=error))


def draw_noisy_bn(result, still_units: bool = False):
    """Test accuracy against steps (left), then the tracked unit's 15/50/85th percentiles over
    each step's mini-batch for the three networks, on one shared vertical scale.
    ``still_units`` (the panel's figure): the unit plots' axes are kept still too."""
    figure = _build_noisy_bn(len(result["seeds"]), still_units)
    update_noisy_bn(figure, result)
    return figure


def _draw_noisy_bn_panel(result):
    """The panel's noisy-BN figure: ``draw_noisy_bn`` with every axes kept still."""
    return draw_noisy_bn(result, still_units=True)


def _build_noisy_bn(seed_count, still_units=False):
    """The noisy-BN figure for ``seed_count`` seeds, without data: one accuracy line per
    network and seed (the first seed drawn strong, the others faint), and per network a median
    line for its unit; kept in ``figure._panel_artists``. The accuracy axes (its range, labels,
    title and legend stay put) is the still layer, drawn by a ``Backdrop``; its lines are on a
    see-through ``overlay_axes``. The three unit plots (their scale follows the noise) are
    drawn on every move, or with ``still_units`` (the panel) are still too, their lines, bands
    and titles on overlays: the Backdrop keeps the last few scales and pastes them back."""
    import matplotlib.pyplot as plt

    with _style():
        figure, axes = plt.subplots(1, 4, figsize=(12, 2.9))
        figure.subplots_adjust(left=0.05, right=0.99, bottom=0.16, top=0.9, wspace=0.2)
        ax = axes[0]
        moving = overlay_axes(ax)
        accuracy = {norm: [moving.plot([], [], color=COLORS[norm], alpha=1.0 if k == 0 else 0.45,
                                   lw=1.4 if k == 0 else 1.0,
                                   label=_(LABELS[norm]) if k == 0 else None)[0]
                           for k in range(seed_count)]
                    for norm in ("none", "batch", "noisy")}
        ax.set(xlabel=_("training step"), ylabel=_("test accuracy"), ylim=(0, 1),
               title=_("test accuracy ({seeds} seeds)").format(seeds=seed_count) if seed_count > 1
               else _("test accuracy"))
        ax.legend(handles=[lines[0] for lines in accuracy.values()], loc="upper left",
                  bbox_to_anchor=(0.25, 0.8))
        median, unit_overlays = {}, {}
        for ax, norm in zip(axes[1:], ("none", "batch", "noisy")):
            # the unit's line, band and title: over the axes, so that they can stay still
            unit_overlays[norm] = overlay_axes(ax) if still_units else ax
            median[norm] = unit_overlays[norm].plot([], [], color=COLORS[norm], lw=0.8)[0]
            ax.set_xlabel(_("training step"))
            if ax is not axes[1]:  # one vertical scale for the three: labels on the first only
                ax.tick_params(labelleft=False)
        axes[1].set_ylabel(_("input to the sigmoid"))
    # with still_units all four axes are still (their ranges follow the noise: the backdrop
    # keeps a few)
    still = list(axes) if still_units else [axes[0]]
    figure._panel_artists = dict(accuracy=accuracy, median=median, band={}, still_axes=still,
                                 backdrop=Backdrop(figure, still, keys=12))
    return figure


def update_noisy_bn(figure, result):
    """Put a ``noisy_bn_result`` into a figure made by ``draw_noisy_bn`` for as many seeds (the
    panel's ``update``: lines get new data, each unit's 15-85 % band is drawn anew)."""
    artists = figure._panel_artists
    runs = result["runs"]
    for norm, seed_runs in runs.items():
        for line, run in zip(artists["accuracy"][norm], seed_runs):
            line.set_data(run.record_steps, run.test_accuracy)
    first = {norm: seed_runs[0] for norm, seed_runs in runs.items()}
    low = min(run.unit_percentiles.min() for run in first.values())
    high = max(run.unit_percentiles.max() for run in first.values())
    with _style():
        for norm, line in artists["median"].items():
            ax, q = line.axes, first[norm].unit_percentiles
            steps = np.arange(1, len(q) + 1)
            line.set_data(steps, q[:, 1])
            if norm in artists["band"]:  # matplotlib 3.7 cannot give a band new data
                artists["band"][norm].remove()
            artists["band"][norm] = ax.fill_between(steps, q[:, 0], q[:, 2], color=COLORS[norm],
                                                    alpha=0.25, lw=0)
            ax.set_title(_("{value}: "
                         "per-step shift {value2:.2f}").format(value=_noisy_bn_name(norm, result['noise']), value2=result['shift'][norm]))
            ax.set_ylim(low - 0.2, high + 0.2)
    for ax in figure.axes:  # the step axis fits the runs
        ax.relim()
        ax.autoscale_view(scaley=False)
    _redraw_still_axes_if_moved(artists)


def _noisy_bn_name(norm, noise):
    """A network's name in its panel title, e.g. "noisy BN, noise 1.5"."""
    if norm == "noisy" and noise == 0:
        return _("noisy BN with noise 0 = BN")
    if norm == "noisy":
        return _("{name}, noise {noise:g}").format(name=_(LABELS[norm]), noise=noise)
    return _(LABELS[norm])


# ----------------------------------------------------------------------------------------
# 2. The loss along the gradient
# ----------------------------------------------------------------------------------------

#: Step sizes of the walk, in learning rates: 2^(k/2) for k = -6..8, from 1/8 to 16. Each
#: checkpoint was probed once on all of them (on WALK_IMAGES training images) and recorded; the
#: panel shows those up to the chosen largest.
WALK_MULTIPLES = why.WALK_MULTIPLES
WALK_IMAGES = why.WALK_IMAGES
CHECKPOINT_EVERY = why.CHECKPOINT_EVERY


def compute_gradient_walk(step=150, largest_multiple=4.0):
    """Walk from the checkpoint at ``step`` (rounded to the checkpoints, every 50 steps) of the
    ReLU MLP without and with BN (seed 0, as recorded in ``data/why_bn_works_panel_runs.json``)
    along the negative gradient of the training loss on
    WALK_IMAGES training images, with step sizes from 1/8 of the learning rate up to
    ``largest_multiple`` learning rates.

    Returns dict: step, lr, step_sizes (S,), and per network ("none", "batch") its Probe.
    """
    if not largest_multiple >= WALK_MULTIPLES[0]:
        return Notice(_("The largest step must be at least {value} learning rates.").format(value=WALK_MULTIPLES[0]))
    step = int(min(max(round(step / CHECKPOINT_EVERY) * CHECKPOINT_EVERY, 0), why.MLP_STEPS))
    shown = np.array(WALK_MULTIPLES) <= largest_multiple * (1 + 1e-9)
    probes = {}
    for norm in ("none", "batch"):
        try:
            # every checkpoint's walk, recorded (``why.record_panel_runs``): nothing is trained
            landscape = why.load_panel_runs().walks[norm]
        except DataFileError as error:
            return _no_record_notice(error)
        full = landscape.probes[int(np.flatnonzero(landscape.steps == step)[0])]
        probes[norm] = why.Probe(step_sizes=full.step_sizes[shown], loss0=full.loss0,
                                 grad_norm=full.grad_norm, losses=full.losses[shown],
                                 grad_changes=full.grad_changes[shown])
    return dict(step=step, lr=why.RELU_LR, step_sizes=why.RELU_LR * np.array(WALK_MULTIPLES)[shown],
                probes=probes)


def draw_gradient_walk(result):
    """Left: the loss at w - eta g against eta, with the gradient's own prediction
    L(w) - eta ||g||^2 dashed. Right: how far the gradient has turned, ||grad(w - eta g) - g||."""
    figure = _build_gradient_walk(result["lr"])
    update_gradient_walk(figure, result)
    return figure


def _build_gradient_walk(lr):
    """The walk figure without data: per network a loss line, its dashed prediction and a
    gradient-change line, and a dotted mark at one learning rate ``lr``; kept in
    ``figure._panel_artists``. The two axes (ticks, labels, the right title) are the still
    layer, drawn by a ``Backdrop`` that keeps the last few ranges; the lines, marks, the legend
    (its words follow the checkpoint) and the left title are on see-through ``overlay_axes``."""
    import matplotlib.pyplot as plt

    with _style():
        figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
        figure.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.85, wspace=0.25)
        moving_left, moving_right = overlay_axes(left), overlay_axes(right)
        _spines_on_top(moving_left, left)
        _spines_on_top(moving_right, right)
        lines = {}
        for norm in ("none", "batch"):
            color = COLORS[norm]
            lines[norm] = dict(loss=moving_left.plot([], [], "o-", ms=3, color=color)[0],
                               prediction=moving_left.plot([], [], "--", color=color, lw=1)[0],
                               change=moving_right.plot([], [], "o-", ms=3, color=color)[0])
        left.set(xlabel=_("step size eta"), ylabel=_("training loss at w - eta g"))
        right.set(xlabel=_("step size eta"), ylabel=_("|| grad(w - eta g) - g ||"),
                  title=_("how much the gradient changes\n(gray: no BN, blue: BN)"))
        legend = moving_right.legend([lines[norm]["change"] for norm in lines], ["", ""],
                                     loc="upper left")
        lr_marks = [ax.axvline(lr, color="k", lw=0.6, ls=":") for ax in (moving_left, moving_right)]
    still = [left, right]
    figure._panel_artists = dict(lines=lines, legend=legend, lr_marks=lr_marks, still_axes=still,
                                 moving=(moving_left, moving_right),
                                 backdrop=Backdrop(figure, still, keys=24))
    return figure


def update_gradient_walk(figure, result):
    """Put a ``compute_gradient_walk`` result into a figure made by ``draw_gradient_walk`` (the
    panel's ``update``); the axes are fitted to the new curves as a fresh figure would be."""
    artists = figure._panel_artists
    probes = result["probes"]
    for (norm, lines), text in zip(artists["lines"].items(), artists["legend"].get_texts()):
        probe = probes[norm]
        eta = np.r_[0.0, probe.step_sizes]
        lines["loss"].set_data(eta, np.r_[probe.loss0, probe.losses])
        lines["prediction"].set_data(eta, probe.loss0 - eta * probe.grad_norm ** 2)
        lines["change"].set_data(eta, np.r_[0.0, probe.grad_changes])
        text.set_text(_("{value} (smoothness {smoothness:.2f})").format(value=_(LABELS[norm]), smoothness=probe.smoothness))
    for mark in artists["lr_marks"]:  # the learning rate, if the walk reaches it
        mark.set_xdata([result["lr"], result["lr"]])
        mark.set_visible(result["lr"] <= result["step_sizes"][-1])
    moving_left, moving_right = artists["moving"]
    top = max(max(p.loss0, p.losses.max()) for p in probes.values())
    with _style():
        moving_left.set_title(_("loss along the gradient at step {step}\n"
                              "(dashed: the gradient's prediction L(w) - eta ||g||^2)").format(step=result['step']))
    moving_left.set_ylim(0, 1.15 * top)
    for ax in (moving_left, moving_right):  # shares its limits with the still axes under it
        ax.relim(visible_only=True)
        ax.autoscale_view()
    _redraw_still_axes_if_moved(artists)


def draw_landscape(landscapes: dict):
    """Santurkar et al.'s Figure 4 in small: at each checkpoint, the range (min to max over the
    step sizes) of the loss along the gradient (a) and of the gradient's change (b), and the
    effective beta-smoothness (c), for each network in ``landscapes`` ({norm: LandscapeProbe})."""
    import matplotlib.pyplot as plt

    with _style():
        figure, axes = plt.subplots(1, 3, figsize=(12, 3.0))
        figure.subplots_adjust(left=0.05, right=0.99, bottom=0.16, top=0.9, wspace=0.25)
        for norm, landscape in landscapes.items():
            color, steps = COLORS[norm], landscape.steps
            for ax, values in zip(axes[:2], (landscape.losses, landscape.grad_changes)):
                ax.fill_between(steps, values.min(axis=1), values.max(axis=1), color=color,
                                alpha=0.3, lw=0)
                ax.plot(steps, values.min(axis=1), color=color, lw=0.8)
                ax.plot(steps, values.max(axis=1), color=color, lw=0.8, label=_(LABELS[norm]))
            axes[2].plot(steps, landscape.smoothness, "o-", ms=3, color=color, label=_(LABELS[norm]))
        axes[0].set(xlabel=_("training step"), ylabel=_("loss at w - eta g"),
                    title=_("(a) loss along the gradient: range over eta"))
        axes[1].set(xlabel=_("training step"), ylabel=_("|| grad(w - eta g) - g ||"),
                    title=_("(b) gradient predictiveness: range over eta"))
        axes[2].set(xlabel=_("training step"), ylabel=_("max || change of gradient || / distance"),
                    title=_("(c) effective beta-smoothness"))
        for ax in axes:
            ax.set_ylim(bottom=0)
            ax.legend(loc="upper right")
    return figure


# ----------------------------------------------------------------------------------------
# 3. Batch size
# ----------------------------------------------------------------------------------------


def compute_batch_size(model_kind="mlp", norm="batch", batch_size=2):
    """One batch-size run (seed 0) and what the panel draws: the test error of every run of
    this model the panel offers, and, for the chosen run, the mean that normalizes each test
    image at the first layer's channel / unit 0 in training mode. All read from the recorded
    runs (``data/why_bn_works_panel_runs.json``): nothing is trained."""
    try:
        why.check_size_settings(model_kind, norm, batch_size)
    except ValueError as error:
        return Notice(_("{error} Choose a batch size of 2 or more for BN in the MLP "
                        "(the CNN's BatchNorm2d averages over 28 x 28 positions too, so it runs "
                        "even with one image).").format(error=error))
    try:
        recorded = why.load_panel_runs().sizes
    except DataFileError as error:
        return _no_record_notice(error)
    entry = recorded.get((model_kind, norm, batch_size if norm == "batch" else None))
    if entry is None:
        return Notice(_("No recorded run for the {model} with {norm} norm and batch size "
                        "{batch_size}: the panel trains nothing itself.").format(
                            model=_(model_kind), norm=_(norm), batch_size=batch_size))
    run, means = entry
    points = {}
    for (kind, other_norm, size), (other, _means) in recorded.items():
        if kind != model_kind:
            continue
        for shown_size in (why.BATCH_SIZES if size is None else (size,)):
            points.setdefault((other_norm, shown_size), []).append(other.test_error)
    return dict(model_kind=model_kind, norm=norm, batch_size=batch_size, run=run,
                means=means, points=points)


def draw_batch_size(result):
    """Left: test error against the number of examples behind each BN statistic (GroupNorm and
    LayerNorm: flat, their statistics never mix examples). Right: the training-mode mean that
    normalizes each test image, against the running mean eval mode uses."""
    figure = _build_batch_size()
    update_batch_size(figure, result)
    return figure


#: The histogram of normalizing means: this many bins between the smallest and largest mean.
MEAN_BINS = 40


def _build_batch_size():
    """The batch-size figure without data: an error line per normalization, a ring for the
    chosen setting, a histogram (one outline, ``ax.stairs``) and the eval-mode mean; kept in
    ``figure._panel_artists``. Both axes are the still layer, drawn by a ``Backdrop`` that
    keeps the last few ranges; the lines, the histogram, the legends (over them, as in a plain
    figure) and the titles are on see-through ``overlay_axes``."""
    import matplotlib.pyplot as plt

    sizes = np.array(why.BATCH_SIZES)
    with _style():
        figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.0))
        figure.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.9, wspace=0.25)
        left.set_xscale("log", base=2)
        moving = overlay_axes(left)
        errors = {norm: moving.plot([], [], "o-", ms=4, color=COLORS[norm], label=_(LABELS[norm]))[0]
                  for norm in why.SIZE_NORMS}
        chosen = moving.plot([], [], "o", ms=11, mfc="none", color="k", label=_("this setting"))[0]
        left.set_xticks(sizes, [str(s) for s in sizes])
        left.set_xlim(sizes[0] / 1.25, sizes[-1] * 1.25)  # every batch size, whatever has run
        left.set(xlabel=_("examples per BN statistic (batch size)"), ylabel=_("test error (%)"))

        moving_means = overlay_axes(right)
        _spines_on_top(moving, left)
        _spines_on_top(moving_means, right)
        histogram = moving_means.stairs(np.zeros(MEAN_BINS), np.arange(MEAN_BINS + 1.0),
                                        fill=True, alpha=0.7)
        eval_mean = moving_means.axvline(0, color="k", lw=1.2, label=_("running mean (eval mode)"))
        eval_legend = moving_means.legend(loc="upper right")
        right.set(xlabel=_("mean that normalizes an image, layer 1, channel 0"), ylabel=_("test images"))
    figure._panel_artists = dict(errors=errors, chosen=chosen, histogram=histogram,
                                 eval_mean=eval_mean, eval_legend=eval_legend, moving_errors=moving,
                                 means_axes=moving_means, still_axes=[left, right],
                                 errors_legend=None, errors_legend_key=None,
                                 backdrop=Backdrop(figure, [left, right], keys=24))
    return figure


def update_batch_size(figure, result):
    """Put a ``compute_batch_size`` result into a figure made by ``draw_batch_size`` (the panel's
    ``update``); the axes are fitted to the new data as a fresh figure would be."""
    artists = figure._panel_artists
    with _style():
        _show_errors(artists["moving_errors"], artists, result)
        _show_means(artists["means_axes"], artists, result)
    _redraw_still_axes_if_moved(artists)


def _show_errors(ax, artists, result):
    """Left plot: the mean test error of every run made so far, per normalization and size,
    the chosen normalization's line thick, the chosen setting ringed; legend for what is shown."""
    shown = []
    for norm, line in artists["errors"].items():
        sizes = [s for s in why.BATCH_SIZES if (norm, s) in result["points"]]
        errors = [100 * np.mean(result["points"][(norm, s)]) for s in sizes]
        line.set_data(sizes, errors)
        line.set_linewidth(2.2 if norm == result["norm"] else 1.0)
        line.set_visible(bool(sizes))
        if sizes:
            shown.append(line)
    artists["chosen"].set_data([result["batch_size"]], [100 * result["run"].test_error])
    handles = [*shown, artists["chosen"]]
    key = [(line.get_label(), line.get_linewidth()) for line in handles]
    if key != artists["errors_legend_key"]:  # made again only when it changes
        artists["errors_legend"] = ax.legend(handles=handles, loc="upper right")
        artists["errors_legend_key"] = key
    ax.set_title(_("{value}, seed 0").format(value=_(MODEL_NAMES[result['model_kind']])))
    ax.set_autoscaley_on(True)
    ax.relim(visible_only=True)
    ax.autoscale_view(scalex=False)
    ax.set_ylim(bottom=0)


def _show_means(ax, artists, result):
    """Right plot: the histogram of the means that normalize each test image, and for BN the
    running mean that eval mode uses instead."""
    means = result["means"]
    counts, edges = np.histogram(means["per_image"], bins=MEAN_BINS)
    artists["histogram"].set_data(counts, edges)
    artists["histogram"].set_facecolor(COLORS[result["norm"]])
    has_eval_mean = means["eval_mean"] is not None
    if has_eval_mean:
        artists["eval_mean"].set_xdata([means["eval_mean"], means["eval_mean"]])
        what = _("BN over groups of {batch_size}").format(batch_size=result['batch_size'])
    else:
        what = _("{name}: each image's own statistics").format(name=_(LABELS[result['norm']]))
    artists["eval_mean"].set_visible(has_eval_mean)
    artists["eval_legend"].set_visible(has_eval_mean)
    ax.set_title(_("{what} ({values_per_statistic} values each)").format(what=what, values_per_statistic=means['values_per_statistic']))
    ax.relim(visible_only=True)
    ax.autoscale_view()


def draw_batch_size_sweep(sweeps: dict):
    """Test error against the examples per BN statistic, one axis per model in ``sweeps``
    ({model_kind: batch_size_sweep(...)}): every seed as a dot, their mean as a line."""
    import matplotlib.pyplot as plt

    with _style():
        figure, axes = plt.subplots(1, len(sweeps), figsize=(4.6 * len(sweeps), 3.0), squeeze=False)
        figure.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.9, wspace=0.2)
        for ax, (model_kind, sweep) in zip(axes[0], sweeps.items()):
            for norm, by_size in sweep.items():
                sizes = sorted(by_size)
                errors = [[run.test_error * 100 for run in by_size[s]] for s in sizes]
                ax.plot(sizes, [np.mean(e) for e in errors], "-", color=COLORS[norm],
                        label=_("{name} (one run for all sizes)").format(name=_(LABELS[norm]))
                        if norm != "batch" else _(LABELS[norm]))
                for size, values in zip(sizes, errors):
                    ax.plot([size] * len(values), values, "o", ms=3.5, color=COLORS[norm])
            all_sizes = sorted({s for by_size in sweep.values() for s in by_size})
            ax.set_xscale("log", base=2)
            ax.set_xticks(all_sizes, [str(s) for s in all_sizes])
            ax.set(xlabel=_("examples per BN statistic (batch size)"), ylabel=_("test error (%)"),
                   title=_(MODEL_NAMES[model_kind]))
            ax.set_ylim(bottom=0)
            ax.legend(loc="upper right" if model_kind == "mlp" else "lower right")
    return figure


PANELS = [
    Panel("noisy BN: how much noise after every BN layer", compute_noisy_bn, _draw_noisy_bn_panel,
          update=update_noisy_bn, controls=[
        Control("noise", "float", why.NOISE, low=0.0, high=2.0, step=0.25,
                description=N_("noise after BN"), test_values=(0.0, 2.0)),
    ]),
    Panel("the loss along the gradient, with and without BN", compute_gradient_walk,
          draw_gradient_walk, update=update_gradient_walk, controls=[
        Control("step", "int", 150, low=0, high=why.MLP_STEPS, step=50,
                description=N_("checkpoint (step)"), test_values=(0, why.MLP_STEPS)),
        Control("largest_multiple", "choice", 4.0, options=(0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
                description=N_("largest step / learning rate"), test_values=(0.5, 16.0)),
    ]),
    Panel("batch size: BN, GroupNorm, LayerNorm", compute_batch_size, draw_batch_size,
          update=update_batch_size, controls=[
        Control("model_kind", "choice", "mlp", options=MODEL_KINDS, description=N_("network")),
        Control("norm", "choice", "batch", options=why.SIZE_NORMS, description=N_("normalization"),
                test_values=("batch", "layer")),
        Control("batch_size", "choice", 2, options=why.BATCH_SIZES, description=N_("batch size"),
                test_values=(1, 32)),
    ]),
]
