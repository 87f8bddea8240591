"""Panels of notebook 02 (the forward transform).

1. ``forward: gamma, beta, batch size``: one feature drawn from a skewed, shifted population is
   batch-normalized. Histograms of the input batch, of x_hat and of the output y, and the batch's
   mean / std estimates against the population's, with how far off a batch of this size
   typically is.
2. ``forward: sigmoid saturation``: standardized inputs, scaled by gamma and shifted by beta,
   fed to a sigmoid: how linear the sigmoid is over them and how much slope is left.

Each figure is built once (axes, ticks, what no control changes, empty artists for the rest)
and then filled from a result: ``draw_*`` builds and fills, ``update_*`` refills the figure a
panel keeps, so a slider move changes a few artists instead of making a new figure. What no
control changes (axes, tick labels, fixed legends) is drawn once and then pasted back by a
``Backdrop`` (``helpers.backdrop``); the rest lives on see-through ``overlay_axes``.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import numpy as np

from helpers.backdrop import Backdrop, overlay_axes
from helpers.bn import batchnorm_forward
from helpers.i18n import N_, _
from helpers.lessons.forward_transform import (
    SkewedPopulation,
    batch_estimate_errors,
    sigmoid,
    sigmoid_regime,
)
from helpers.panel import Control, Notice, Panel

__all__ = [
    "PANELS",
    "compute_forward_histograms",
    "compute_sigmoid_regime",
    "draw_forward_histograms",
    "draw_sigmoid_regime",
    "update_forward_histograms",
    "update_sigmoid_regime",
]

POPULATION = SkewedPopulation()
EPS = 1e-5
#: batch sizes at which the typical estimation error is precomputed (the noise curve)
NOISE_GRID = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)

BATCH_OF_ONE = N_(
    "<b>Batch size 1: nothing to normalize.</b> A batch of one value has that value as its "
    "mean and 0 as its variance, so x&#770; = (x &minus; x) / &radic;(0 + &epsilon;) = 0 for "
    "<i>every</i> input, and the output is &beta; whatever the input was: the layer would pass "
    "on no information and no gradient to x. That is why "
    "<code>torch.nn.functional.batch_norm</code> in training mode refuses such a batch "
    "(<code>ValueError: Expected more than 1 value per channel when training, got input size "
    "torch.Size([1, 1])</code>) and <code>helpers.bn.batchnorm_forward</code> does too. "
    "At inference (eval mode) a single example is fine: it is normalized with the running "
    "statistics (notebook 04). Move the slider to 2 or more."
)


def _batch_seed(batch_size: int, batch_number: int) -> int:
    return 10_000 * int(batch_number) + int(batch_size)


@lru_cache(maxsize=1)
def _noise_curve() -> dict:
    """Typical error of the batch mean / std at each size of NOISE_GRID (computed once)."""
    return batch_estimate_errors(POPULATION, NOISE_GRID, batches=400, seed=1)


@lru_cache(maxsize=1)
def _population_curve():
    """(x, density) of the population, for drawing (computed once)."""
    grid = np.linspace(POPULATION.shift - 0.2, POPULATION.shift + POPULATION.scale * np.exp(3.3 * POPULATION.sigma), 300)
    return grid, POPULATION.pdf(grid)


def compute_forward_histograms(gamma=1.0, beta=0.0, batch_size=32, batch_number=0):
    """Batch-normalize one mini-batch of the skewed population (one feature, eps = 1e-5).

    Returns a Notice for batch_size < 2, else a dict:
        x, x_hat, y:             (m,) the batch, its normalized values, the output
        batch_mean, batch_std:   the batch's mean and biased std (what BN divides by)
        population_mean, population_std
        mean_error:              |batch_mean - population_mean| / population_std
        std_error:               batch_std / population_std - 1
        typical_mean_error:      RMS of mean_error over many batches of this size
                                 (about 1 / sqrt(m))
        output_mean, output_std: mean and std (ddof=0) of y; output_mean = beta exactly,
                                 output_std = |gamma| * sqrt(var / (var + eps))
        x_hat_bound:             sqrt(m - 1), the largest |x_hat| any batch of m can produce
        gamma, beta, batch_size, batch_number, noise (the precomputed noise curve),
        population_curve ((x, density))
    """
    batch_size = int(batch_size)
    if batch_size < 2:
        return Notice(_(BATCH_OF_ONE))
    x = POPULATION.sample(batch_size, seed=_batch_seed(batch_size, batch_number))  # (m,)
    out, cache = batchnorm_forward(x[:, None], np.array([gamma]), np.array([beta]), eps=EPS)
    y = out[:, 0]
    batch_mean, batch_var = float(cache.mu[0]), float(cache.var[0])
    noise = _noise_curve()
    typical = float(np.interp(np.log(batch_size), np.log(noise["batch_sizes"]), noise["mean_rmse"]))
    return dict(
        x=x,
        x_hat=cache.x_hat[:, 0],
        y=y,
        batch_mean=batch_mean,
        batch_std=float(np.sqrt(batch_var)),
        population_mean=POPULATION.mean,
        population_std=POPULATION.std,
        mean_error=abs(batch_mean - POPULATION.mean) / POPULATION.std,
        std_error=float(np.sqrt(batch_var)) / POPULATION.std - 1,
        typical_mean_error=typical,
        output_mean=float(y.mean()),
        output_std=float(y.std()),
        x_hat_bound=float(np.sqrt(batch_size - 1)),
        gamma=float(gamma),
        beta=float(beta),
        batch_size=batch_size,
        batch_number=int(batch_number),
        noise=noise,
        population_curve=_population_curve(),
    )


def _number(value: float, digits: int = 2) -> str:
    """value rounded for a title, without a "-0.00"."""
    return f"{round(value, digits) + 0.0:.{digits}f}"


def _edges(values, low, high, width):
    """Histogram bin edges of a fixed width covering [low, high] and every value."""
    low = min(low, float(np.min(values)))
    high = max(high, float(np.max(values)))
    return low + width * np.arange(int(np.ceil((high - low) / width)) + 1)


#: font sizes of both figures (applied when their artists are made and when they are filled)
STYLE = {"font.size": 9, "axes.titlesize": 9.5}
RUG_MARKER = dict(marker="|", ls="none", color="#333", ms=8)


def _histogram(ax, color):
    """An empty filled histogram (one artist: much faster than ax.hist's bars) and a rug of
    the individual values underneath it (a small batch is a handful of ticks)."""
    bars = ax.stairs([0.0], [0.0, 1.0], fill=True, color=color)
    rug, = ax.plot([], [], alpha=0.6, **RUG_MARKER)
    return bars, rug


def _fill_histogram(bars, rug, values, edges, density=False):
    """Show ``values`` in a histogram made by ``_histogram``; returns the tallest bar."""
    counts, edges = np.histogram(values, bins=edges, density=density)
    bars.set_data(counts, edges)
    rug.set_data(values, np.zeros_like(values))
    return counts.max()


def _fix_label_place(ax):
    """Put the x label 20 points under the axes, where matplotlib puts it under one row of
    tick labels, once and for all: left to matplotlib, it is placed anew on every redraw by
    measuring every tick label (even on axes that have no label)."""
    from matplotlib.transforms import ScaledTranslation

    below = ScaledTranslation(0, -20 / 72, ax.figure.dpi_scale_trans)
    ax.xaxis.set_label_coords(0.5, 0, transform=ax.transAxes + below)


def _title(ax, text):
    """Set the title at a fixed height (with y given, matplotlib does not measure the tick
    labels on every redraw to see whether the title must move up)."""
    ax.set_title(text, y=1.0)


def _set_limits(ax, x_low, x_high, y_top):
    """x from x_low to x_high, y from 0 to y_top, with matplotlib's usual 5% margins (none
    below 0: the bars stand on the axis)."""
    margin = 0.05 * (x_high - x_low)
    ax.set_xlim(x_low - margin, x_high + margin)
    ax.set_ylim(0, 1.05 * y_top)


def draw_forward_histograms(result):
    """Four small plots: input batch, x_hat, output y, and the noise of batch estimates."""
    figure = _build_forward_figure(result)
    update_forward_histograms(figure, result)
    return figure


def _build_forward_figure(result):
    """The four plots with what no control changes (the population, the noise curves: only
    those entries of ``result`` are used) and empty artists for the rest, in two layers.

    The still layer: the four axes with their ticks, the noise curves, the x label and the
    legends; a ``Backdrop`` draws it once per key (the x limits and the legends' words, which
    gamma, beta and the batch change) and pastes it back on later draws. The moving layer: on
    each axes a see-through ``overlay_axes`` with the histograms, the lines and the titles.
    The artists that change are kept in
    ``figure.artists_to_update`` for ``update_forward_histograms`` to fill.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, MaxNLocator, NullLocator

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 2, figsize=(9.2, 5.6))
        fig.subplots_adjust(left=0.04, right=0.98, bottom=0.09, top=0.95, wspace=0.14, hspace=0.32)
        (ax_in, ax_hat), (ax_out, ax_noise) = axes
        a = SimpleNamespace(ax_in=ax_in, ax_hat=ax_hat, ax_out=ax_out, ax_noise=ax_noise,
                            moving_in=overlay_axes(ax_in), moving_hat=overlay_axes(ax_hat),
                            moving_out=overlay_axes(ax_out), moving_noise=overlay_axes(ax_noise))

        # 1. the input batch against its population
        a.in_bars, a.in_rug = _histogram(a.moving_in, "#9ecae1")
        grid, density = result["population_curve"]
        a.moving_in.plot(grid, density, color="#555", lw=1.2, label=_("population"))
        a.moving_in.axvline(result["population_mean"], color="#555", ls="--", lw=1.2,
                            label=_("population mean {value}").format(value=_number(result['population_mean'])))
        a.batch_mean = a.moving_in.axvline(0, color="#d62728", lw=1.6, label=_("batch mean"))
        # on the still axes: the legend is drawn with the still layer (its words are in the key)
        a.in_legend = ax_in.legend(*a.moving_in.get_legend_handles_labels(), loc="upper right",
                                   fontsize=7.5, frameon=False)
        ax_in.set_yticks([])

        # 2. x_hat: centred and scaled, but exactly as skewed as the input
        a.hat_bars, a.hat_rug = _histogram(a.moving_hat, "#a1d99b")
        a.moving_hat.axvline(0, color="#d62728", lw=1.6)
        a.bounds = [a.moving_hat.axvline(0, color="#777", ls=":", lw=1.2) for _line in range(2)]
        a.bound_text = a.moving_hat.text(0, 0.92, " |x̂| ≤ √(m−1)", fontsize=7.5, color="#555",
                                         transform=a.moving_hat.get_xaxis_transform())
        ax_hat.set_yticks([])

        # 3. the output: the x_hat histogram, stretched by gamma and moved by beta
        a.beta = a.moving_out.axvline(0, color="#d62728", lw=1.6)
        a.out_bars, a.out_rug = _histogram(a.moving_out, "#fdae6b")
        a.spread = [a.moving_out.axvline(0, color="#d62728", ls=":", lw=1.2) for _line in range(2)]
        a.spread_key = Line2D([], [], color="#d62728", ls=":", lw=1.2)
        a.forgotten = a.moving_out.text(0.02, 0.8, _("the input is forgotten:\nno information, and no gradient to x"),
                                        transform=a.moving_out.transAxes, fontsize=8, color="#555")
        ax_out.set_yticks([])
        ax_out.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 4, 5, 10]))  # -8, -4, ..., 8

        # 4. how far off a batch of this size is
        noise = result["noise"]
        sizes = noise["batch_sizes"]
        ax_noise.loglog(sizes, noise["mean_rmse"], "o-", ms=3, color="#d62728", label=_("batch mean: typical error"))
        ax_noise.loglog(sizes, noise["std_rmse"], "s-", ms=3, color="#3182bd", label=_("batch std: typical error"))
        ax_noise.loglog(sizes, 1 / np.sqrt(sizes), "--", color="#555", lw=1, label="1/√m")
        a.size_line = a.moving_noise.axvline(sizes[0], color="#999", lw=1)
        a.mean_star, = a.moving_noise.plot([sizes[0]], [1.0], "*", ms=11, color="#d62728")
        # plain tick labels, no minor ticks: log axes' default labels are slow to typeset
        ax_noise.xaxis.set_major_locator(FixedLocator([2, 4, 8, 16, 32, 64, 128, 256]))
        ax_noise.yaxis.set_major_locator(FixedLocator([0.01, 0.03, 0.1, 0.3, 1.0]))
        for axis in (ax_noise.xaxis, ax_noise.yaxis):
            axis.set_minor_locator(NullLocator())
            axis.set_major_formatter(FormatStrFormatter("%g"))
        ax_noise.set_ylim(0.008, 2)
        ax_noise.set_xlabel(_("batch size m (error in units of the population std)"))
        curves = ax_noise.get_lines()
        ax_noise.legend([*curves, a.mean_star], [line.get_label() for line in curves] + [_("this batch's mean")],
                        loc="lower left", fontsize=7.5, frameon=False)
        for ax in axes.flat:
            _fix_label_place(ax)
    # the output plot's x range and its legend follow gamma and beta: they are in the key
    a.still_axes = [ax_in, ax_hat, ax_out, ax_noise]
    a.out_legend_labels = None  # the labels of the output plot's legend, once made
    a.backdrop = Backdrop(fig, a.still_axes, keys=24)
    fig.artists_to_update = a
    return fig


def update_forward_histograms(figure, result):
    """Show ``result`` in a figure made by ``draw_forward_histograms`` (the panel's redraw)."""
    import matplotlib.pyplot as plt

    r, a = result, figure.artists_to_update
    m, gamma, beta = r["batch_size"], r["gamma"], r["beta"]
    with plt.rc_context(STYLE):
        # 1. the input batch against its population
        grid, density = r["population_curve"]
        edges = _edges(r["x"], grid[0], grid[-1], 0.25)
        tallest = _fill_histogram(a.in_bars, a.in_rug, r["x"], edges, density=True)
        _set_limits(a.ax_in, edges[0], edges[-1], max(tallest, density.max()))
        a.batch_mean.set_xdata([r["batch_mean"]] * 2)
        a.in_legend.get_texts()[2].set_text(_("batch mean {value}").format(value=_number(r['batch_mean'])))
        _title(a.moving_in, _("input batch, m = {m}: std {std} (population {population_std}, {error:+.0%})").format(
            m=m, std=_number(r['batch_std']), population_std=_number(r['population_std']), error=r['std_error']))

        # 2. x_hat: centred and scaled, but exactly as skewed as the input
        hat_edges = _edges(r["x_hat"], -3.0, 6.0, 0.25)
        tallest = _fill_histogram(a.hat_bars, a.hat_rug, r["x_hat"], hat_edges)
        _set_limits(a.ax_hat, hat_edges[0], hat_edges[-1], tallest)
        bound = r["x_hat_bound"]
        for sign, line in zip((-1, 1), a.bounds):  # shown only where they fit in the plot
            line.set_xdata([sign * bound] * 2)
            line.set_visible(bound <= 3)
        a.bound_text.set_x(bound)
        a.bound_text.set_visible(bound <= 3)
        _title(a.moving_hat, _("x̂ = (x − {mean})/√({var} + ε): mean 0, std 1, same shape").format(
            mean=_number(r['batch_mean']), var=_number(r['batch_std'] ** 2, 3)))

        # 3. the output: the x_hat histogram, stretched by gamma and moved by beta
        a.beta.set_xdata([beta] * 2)
        a.beta.set_label(f"β = {_number(beta)}")
        stretched = gamma != 0
        if stretched:
            tallest = _fill_histogram(a.out_bars, a.out_rug, r["y"], np.sort(gamma * hat_edges + beta))
            a.ax_out.set_ylim(0, 1.05 * tallest)
            for sign, line in zip((-1, 1), a.spread):
                line.set_xdata([beta + sign * abs(gamma)] * 2)
            _title(a.moving_out, _("y = {gamma}·x̂ + {beta}: mean {mean}, std {std}").format(
                gamma=_number(gamma), beta=_number(beta), mean=_number(r['output_mean']),
                std=_number(r['output_std'], 3)))
        else:
            a.out_rug.set_data(r["y"], np.zeros_like(r["y"]))
            a.ax_out.set_ylim(-1, 1)  # the outputs, all equal, in the middle
            _title(a.moving_out, _("γ = 0: every output equals β = {beta}").format(beta=_number(beta)))
        a.out_rug.set_alpha(0.6 if stretched else None)
        for artist in (a.out_bars, *a.spread):
            artist.set_visible(stretched)
        a.forgotten.set_visible(not stretched)
        labels = [a.beta.get_label(), "β ± |γ|"][:2 if stretched else 1]
        if labels != a.out_legend_labels:  # on the still axes, made again only when its words change
            a.ax_out.legend(handles=[a.beta, a.spread_key][:len(labels)], labels=labels,
                            loc="upper right", fontsize=7.5, frameon=False)
            a.out_legend_labels = labels
        low, high = min(-9.0, float(r["y"].min()) - 0.5), max(9.0, float(r["y"].max()) + 0.5)
        a.ax_out.set_xlim(low, high)

        # 4. how far off a batch of this size is
        a.size_line.set_xdata([m] * 2)
        a.mean_star.set_data([m], [max(r["mean_error"], 0.01)])
        _title(a.moving_noise, _("this batch's mean is off by {error}σ (typical at m = {m}: {typical}σ)").format(
            error=_number(r['mean_error']), m=m, typical=_number(r['typical_mean_error'])))
    _forget_if_limits_changed(a)


def _forget_if_limits_changed(a):
    """The x limits and the legends' words are the only parts of the still layer a result
    changes (the histograms' y axes have no ticks): when they differ from the ones the backdrop
    was drawn with, the backdrop pastes the pixels it kept for them or draws the still layer
    again."""
    a.backdrop.redraw_if_changed([[ax.get_xlim() for ax in a.still_axes],
                                  a.in_legend.get_texts()[2].get_text(), a.out_legend_labels])


@lru_cache(maxsize=1)
def _standard_normal_sample() -> np.ndarray:
    """2000 fixed draws of N(0, 1), standardized exactly: what x_hat looks like for a big batch."""
    z = np.random.default_rng(2).standard_normal(2000)
    return (z - z.mean()) / z.std()


def compute_sigmoid_regime(gamma=1.0, beta=0.0):
    """Standardized inputs x_hat (2000 values, mean 0, std 1), then z = gamma * x_hat + beta.

    Returns a dict: z (2000,), gamma, beta, verdict (a short description of the regime:
    "saturated", "nearly linear" or "nonlinear"), and the entries of
    ``helpers.lessons.forward_transform.sigmoid_regime(z)`` (linear_r2, tangent_r2, mean_slope,
    saturated_fraction).
    """
    z = float(gamma) * _standard_normal_sample() + float(beta)
    regime = sigmoid_regime(z)
    if regime["saturated_fraction"] > 0.5:
        verdict = N_("saturated: most inputs get almost no gradient")
    elif regime["linear_r2"] > 0.97:
        verdict = N_("nearly linear: the sigmoid acts as a straight line here")
    else:
        verdict = N_("nonlinear: the inputs reach the sigmoid's bends")
    return dict(z=z, gamma=float(gamma), beta=float(beta), verdict=verdict, **regime)


SIGMOID_GRID = np.linspace(-10, 10, 400)
Z_EDGES = np.linspace(-10, 10, 81)  # histogram bins of the inputs z (clipped to +-10)
SLOPE_EDGES = np.linspace(0, 0.25, 41)  # histogram bins of the slopes sigmoid'(z)


def draw_sigmoid_regime(result):
    """The sigmoid with the inputs beneath it, and the slopes the inputs get."""
    figure = _build_sigmoid_figure()
    update_sigmoid_regime(figure, result)
    return figure


def _build_sigmoid_figure():
    """The axes, ticks and labels, and empty artists for what the controls change, in two
    layers: the two still axes, drawn once by a ``Backdrop``; over them the moving layer, a
    histogram axes behind the sigmoid (its own y scale) and see-through ``overlay_axes`` with
    the curves, the legends and the titles. The artists that change are kept in
    ``figure.artists_to_update`` for ``update_sigmoid_regime`` to fill."""
    import matplotlib.pyplot as plt

    with plt.rc_context(STYLE):
        fig, (ax_curve, ax_slope) = plt.subplots(1, 2, figsize=(9.2, 3.0))
        fig.subplots_adjust(left=0.05, right=0.98, bottom=0.16, top=0.9, wspace=0.08)
        ax_hist = ax_curve.twinx()
        a = SimpleNamespace(ax_curve=ax_curve, ax_hist=ax_hist, ax_slope=ax_slope,
                            moving_slope=overlay_axes(ax_slope))
        a.z_bars = ax_hist.stairs(np.zeros(len(Z_EDGES) - 1), Z_EDGES, fill=True, color="#c6dbef")
        ax_hist.set_yticks([])
        a.moving_curve = overlay_axes(ax_curve)  # made after ax_hist, so drawn over it
        a.moving_curve.plot(SIGMOID_GRID, sigmoid(SIGMOID_GRID), color="#333", lw=1.5)
        a.straight, = a.moving_curve.plot([], [], color="#d62728", lw=2, label=_("best straight line"))
        ax_curve.set_xlim(-10, 10)
        ax_curve.set_ylim(-0.05, 1.05)
        ax_curve.set_xticks([-10, -5, 0, 5, 10])  # few tick labels: each costs time on every redraw
        ax_curve.set_yticks([0, 0.5, 1])
        ax_curve.set_xlabel("z = γ·x̂ + β")
        a.curve_legend = a.moving_curve.legend(loc="upper left", fontsize=7.5, frameon=False)

        a.slope_bars = a.moving_slope.stairs(np.zeros(len(SLOPE_EDGES) - 1), SLOPE_EDGES, fill=True,
                                             color="#fdae6b")
        a.mean_slope = a.moving_slope.axvline(0, color="#d62728", lw=1.6, label=_("mean σ'(z)"))
        a.moving_slope.axvline(0.01, color="#777", ls=":", lw=1.2, label=_("saturated (σ' < 0.01)"))
        ax_slope.set_xlim(0, 0.26)
        ax_slope.set_xticks([0, 0.05, 0.1, 0.15, 0.2, 0.25], ["0", "0.05", "0.1", "0.15", "0.2", "0.25"])
        ax_slope.set_xlabel(_("σ'(z) at the inputs (0.25 at most)"))
        ax_slope.set_yticks([])
        a.slope_legend = a.moving_slope.legend(loc="upper center", fontsize=7.5, frameon=False)
        for ax in (ax_curve, ax_slope):
            _fix_label_place(ax)
    # nothing in the still layer depends on a result: the y limits that change have no ticks
    a.backdrop = Backdrop(fig, [ax_curve, ax_slope])
    fig.artists_to_update = a
    return fig


def update_sigmoid_regime(figure, result):
    """Show ``result`` in a figure made by ``draw_sigmoid_regime`` (the panel's redraw)."""
    import matplotlib.pyplot as plt

    r, a = result, figure.artists_to_update
    z = r["z"]
    with plt.rc_context(STYLE):
        counts, _edges = np.histogram(np.clip(z, -10, 10), bins=Z_EDGES)
        a.z_bars.set_data(counts)
        a.ax_hist.set_ylim(0, 1.05 * counts.max())
        low, high = np.percentile(z, [1, 99])
        inside = SIGMOID_GRID[(SIGMOID_GRID >= low) & (SIGMOID_GRID <= high)]
        slope, intercept = np.polyfit(z, sigmoid(z), 1)
        a.straight.set_data(inside, slope * inside + intercept)
        a.curve_legend.get_texts()[0].set_text(_("best straight line: R² = {linear_r2:.3f}").format(linear_r2=r['linear_r2']))
        _title(a.moving_curve, _("σ(z) over the inputs (γ = {gamma:.2f}, β = {beta:.2f})").format(
            gamma=r['gamma'], beta=r['beta']))

        slopes = sigmoid(z) * (1 - sigmoid(z))
        counts, _edges = np.histogram(slopes, bins=SLOPE_EDGES)
        a.slope_bars.set_data(counts)
        a.mean_slope.set_xdata([r["mean_slope"]] * 2)
        mean_text, saturated_text = a.slope_legend.get_texts()
        mean_text.set_text(_("mean σ'(z) = {mean_slope:.3f}").format(mean_slope=r['mean_slope']))
        saturated_text.set_text(_("saturated (σ' < 0.01): {saturated_fraction:.0%}").format(saturated_fraction=r['saturated_fraction']))
        a.ax_slope.set_ylim(0, 1.05 * counts.max())
        _title(a.moving_slope, _(r["verdict"]))


PANELS = [
    Panel("forward: gamma, beta, batch size", compute_forward_histograms, draw_forward_histograms, [
        Control("gamma", "float", 1.0, low=-3.0, high=3.0, step=0.1, description=N_("γ (scale)"),
                test_values=(-3.0, 0.0, 3.0)),
        Control("beta", "float", 0.0, low=-3.0, high=3.0, step=0.1, description=N_("β (shift)"),
                test_values=(-3.0, 3.0)),
        Control("batch_size", "int", 32, low=1, high=256, description=N_("batch size m"),
                test_values=(1, 2, 256)),
        Control("batch_number", "int", 0, low=0, high=19, description=N_("which batch")),
    ], update=update_forward_histograms),
    Panel("forward: sigmoid saturation", compute_sigmoid_regime, draw_sigmoid_regime, [
        Control("gamma", "log", 1.0, low=0.1, high=10.0, step=0.05, description=N_("γ (scale)")),
        Control("beta", "float", 0.0, low=-8.0, high=8.0, step=0.25, description=N_("β (shift)")),
    ], update=update_sigmoid_regime),
]
