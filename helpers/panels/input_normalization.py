"""Notebook 01's panel and figures: gradient descent on a least-squares bowl.

``gd_view`` gathers what a picture of one run needs (the bowl's contour ellipses, the path,
the excess loss per step, the step count or why there is none); ``draw_gd_views`` draws one
or more views side by side, plus their loss curves. The panel
``compute_gd_two_features(scale_ratio, learning_rate, correlation, features)`` builds a
two-feature problem with an exact feature-scale ratio and correlation, optionally z-scored or
whitened, and runs gradient descent from w = 0 on it.

A slider move does not build a new figure: ``update_gd_two_features`` gives the lines, limits
and titles of the figure ``draw_gd_two_features`` made their new data (``draw`` is "make the
empty artists" + the same filling), and the panel's axes are kept quick to redraw (axis labels
at fixed places, a log axis with a few plain-text labels). What depends on the problem only,
not on the learning rate (the bowl's axes, ticks and labels, the numbers at the foot), and the
loss plot's axes for its range, are drawn once and then pasted back by a ``Backdrop``
(``helpers.backdrop``); the path, the contours and the loss curves are on see-through
``overlay_axes`` over them.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from helpers.backdrop import Backdrop, overlay_axes
from helpers.i18n import N_, _
from helpers.lessons.input_normalization import (
    TOL,
    LeastSquares,
    excess_after,
    gradient_descent,
    steps_to_tolerance,
    two_feature_problem,
    whiten,
    zscore,
)
from helpers.panel import Control, Panel

__all__ = ["PANELS", "compute_gd_two_features", "draw_gd_two_features", "draw_gd_views", "gd_view",
           "update_gd_two_features"]

#: the dropdown's values (compared against below); the dropdown shows them translated
FEATURES = (N_("raw"), N_("z-score"), N_("whitened (ZCA)"))
DRAWN_STEPS = 2_000  # the path drawn is cut here; the step count is exact whatever its size
_LEVELS = (1 / 256, 1 / 32, 1 / 4, 1.0, 4.0)  # contour lines: excess loss / the start's


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def gd_view(problem: LeastSquares, learning_rate: float, w0=None, label: str = "",
            names=("w1", "w2"), tol: float = TOL) -> dict:
    """Everything a picture of gradient descent on a 2-parameter least-squares problem needs."""
    w0 = np.zeros(2) if w0 is None else np.asarray(w0, dtype=np.float64)
    values, vectors = np.linalg.eigh(problem.hessian)
    kappa = values[-1] / values[0]
    lr_max = 2.0 / values[-1]
    offset = w0 - problem.minimizer
    steps = steps_to_tolerance(problem.hessian, offset, learning_rate, tol)
    best_lr = 2.0 / (values[0] + values[-1])
    best_steps = steps_to_tolerance(problem.hessian, offset, best_lr, tol)
    if steps is None:
        if learning_rate > lr_max:
            status = _("diverges: learning rate {value} is above 2/λ_max = {value2}").format(
                value=_fmt(learning_rate), value2=_fmt(lr_max))
        else:
            status = _("never converges: learning rate {value} equals 2/λ_max = {value2}, the steep "
                       "direction oscillates forever").format(value=_fmt(learning_rate), value2=_fmt(lr_max))
        run = gradient_descent(problem, w0, learning_rate, max_steps=25, tol=tol)
        shown = np.arange(26)
    else:
        status = (_("{steps:,} steps to reach {tol:g} of the starting excess loss") if steps != 1
                  else _("{steps:,} step to reach {tol:g} of the starting excess loss")).format(steps=steps, tol=tol)
        run = gradient_descent(problem, w0, learning_rate, max_steps=min(steps, DRAWN_STEPS), tol=tol)
        shown = np.unique(np.linspace(0, max(steps, 1), 400).round().astype(int))
    start = float(problem.excess_loss(w0))
    curve = excess_after(problem.hessian, offset, learning_rate, shown) / start
    # contour lines of the bowl, drawn exactly as ellipses (crisp at any condition number)
    t = np.linspace(0, 2 * np.pi, 241)
    circle = np.stack([np.cos(t), np.sin(t)])
    ellipses = [
        (problem.minimizer[:, None] + vectors @ (np.sqrt(2 * level * start / values)[:, None] * circle)).T
        for level in _LEVELS
    ]
    center = (w0 + problem.minimizer) / 2
    half = 0.75 * np.max(np.abs(problem.minimizer - w0)) + 1e-12
    return {
        "label": label, "names": tuple(names), "eigenvalues": values, "kappa": kappa,
        "lr": learning_rate, "lr_max": lr_max, "best_lr": best_lr, "best_steps": best_steps,
        "steps": steps, "status": status, "diverged": steps is None,
        "path": run.path, "path_is_cut": steps is not None and steps > DRAWN_STEPS,
        "curve_steps": shown, "curve": curve, "ellipses": ellipses,
        "start": w0, "minimizer": problem.minimizer,
        "xlim": (center[0] - half, center[0] + half), "ylim": (center[1] - half, center[1] + half),
    }


COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
def draw_gd_views(views, curve: bool = True, width: float = 3.3, still_loss: bool = False):
    """Contours and path of each view, side by side, then (optionally) their loss curves
    (``still_loss``: on a see-through overlay over the loss axes, so that a panel can keep
    those axes still)."""
    figure = _gd_figure(len(views), curve, width, still_loss)
    _show_views(figure, views)
    return figure


def _gd_figure(count: int, curve: bool, width: float, still_loss: bool = False):
    """The axes and the (still empty) artists of ``count`` views and their loss curves; they
    are kept in ``figure.artists_to_update`` for ``_show_views`` to fill. Each bowl's lines and
    title are on a see-through ``overlay_axes`` (``bowl.moving``) over its axes (``bowl.ax``),
    so that the panel can keep the axes still."""
    import matplotlib.pyplot as plt

    columns = count + int(curve)
    fig, axes = plt.subplots(1, columns, figsize=(width * columns, width + 0.6), squeeze=False)
    axes = axes[0]
    bowls = []
    for ax, color in zip(axes, COLORS[:count]):
        ax.set_aspect("equal")
        ax.tick_params(labelsize=8)
        moving = overlay_axes(ax)
        moving.set_aspect("equal")  # shrunk to a square like ax
        bowls.append(SimpleNamespace(
            ax=ax,
            moving=moving,
            ellipses=[moving.plot([], [], color="0.75", lw=0.8)[0] for _level in _LEVELS],
            path=moving.plot([], [], "-", color=color, lw=1.2)[0],
            dots=moving.plot([], [], ".", color=color, ms=4)[0],
            start=moving.plot([], [], "o", color="black", ms=5)[0],
            minimizer=moving.plot([], [], "*", color="crimson", ms=11)[0],
        ))
    loss = None
    if curve:
        ax = axes[-1]
        # the curves: on the axes, or over them so that the axes can stay still
        moving = overlay_axes(ax) if still_loss else ax
        ax.set_yscale("log")  # (shared with the overlay)
        ax.axhline(TOL, color="0.4", ls="--", lw=0.8)
        ax.text(0.02, TOL, _("tolerance {TOL:g}").format(TOL=TOL), ha="left", va="bottom", fontsize=8,
                transform=ax.get_yaxis_transform())
        ax.set_xlabel(_("step"), fontsize=9)
        ax.set_ylabel(_("excess loss / starting excess loss"), fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_title(_("loss curve"), fontsize=9, y=1.0)  # y given: no search for room above
        loss = SimpleNamespace(ax=ax, moving=moving,
                               lines=[moving.plot([], [], color=color)[0] for color in COLORS[:count]])
    fig.subplots_adjust(left=0.6 / (width * columns), right=1 - 0.15 / (width * columns),
                        bottom=0.16, top=0.84, wspace=0.42)
    _place_overlays(bowls, loss)
    fig.artists_to_update = SimpleNamespace(bowls=bowls, loss=loss)
    return fig


def _place_overlays(bowls, loss=None) -> None:
    """Put each bowl's overlay (and the loss curves') exactly over its axes again (after
    ``subplots_adjust``)."""
    for bowl in bowls:
        bowl.moving.set_position(bowl.ax.get_position(original=True))
    if loss is not None and loss.moving is not loss.ax:
        loss.moving.set_position(loss.ax.get_position(original=True))


def _show_views(figure, views) -> None:
    """Fill the artists of a figure made by ``_gd_figure`` with ``views``."""
    artists = figure.artists_to_update
    for bowl, view in zip(artists.bowls, views):
        _show_bowl(bowl, view)
    if artists.loss is not None:
        _show_loss_curves(artists.loss, views)


def _show_bowl(bowl, view) -> None:
    """One view's contour ellipses, path, start and minimum, axis limits and title."""
    for line, ellipse in zip(bowl.ellipses, view["ellipses"]):
        line.set_data(ellipse[:, 0], ellipse[:, 1])
    path = view["path"]
    bowl.path.set_data(path[:, 0], path[:, 1])
    bowl.dots.set_data(path[:60, 0], path[:60, 1])
    bowl.start.set_data([view["start"][0]], [view["start"][1]])
    bowl.minimizer.set_data([view["minimizer"][0]], [view["minimizer"][1]])
    ax = bowl.ax
    ax.set_xlim(view["xlim"])
    ax.set_ylim(view["ylim"])
    ax.set_xlabel(view["names"][0], fontsize=9)
    ax.set_ylabel(view["names"][1], fontsize=9)
    steps = (_("no convergence") if view["diverged"]
             else (_("{steps:,} steps") if view["steps"] != 1 else _("{steps:,} step")).format(steps=view["steps"]))
    cut = _(" (first {steps:,} drawn)").format(steps=DRAWN_STEPS) if view["path_is_cut"] else ""
    bowl.moving.set_title(_("{label}\nκ = {value}, {steps}{cut}").format(label=view['label'], value=_fmt(view['kappa']), steps=steps, cut=cut), fontsize=9, y=1.0,
                 color="crimson" if view["diverged"] else "black")


def _step_label(value, position=None) -> str:
    """A tick label of the step axis: 0, 1, 10, 10², ... in plain text."""
    if value < 0.5:
        return "0"
    return _power_of_ten(value) if value >= 100 else f"{value:.0f}"


def _set_step_scale(ax, longest: int, log_steps: bool) -> None:
    """The step axis: linear, or, when the runs' lengths differ a lot, linear from 0 to 1 and
    logarithmic above (matplotlib's "symlog"), so that step 0 is drawn at 0 where it belongs
    (a plain log axis cannot show step 0 at all)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

    scale = "symlog" if log_steps else "linear"
    if ax.get_xscale() != scale:
        if log_steps:
            ax.set_xscale("symlog", linthresh=1.0, linscale=0.4)
        else:
            ax.set_xscale("linear")
    if log_steps:
        decades = int(np.ceil(np.log10(max(longest, 10))))
        stride = max(1, int(np.ceil(decades / 5)))  # at most ~6 labels
        ax.xaxis.set_major_locator(FixedLocator([0.0, *(10.0**k for k in range(0, decades + 1, stride))]))
        ax.xaxis.set_major_formatter(FuncFormatter(_step_label))
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))  # room for labels such as 300000


def _show_loss_curves(loss, views) -> None:
    """Every view's excess loss per step; when their lengths differ a lot, on a step axis that
    is linear up to 1 and logarithmic above (step 0 stays at 0)."""
    ax = loss.ax
    longest = max(view["curve_steps"][-1] for view in views)
    log_steps = longest > 50 * min(max(view["curve_steps"][-1], 1) for view in views)
    for line, view in zip(loss.lines, views):
        line.set_data(view["curve_steps"], np.clip(view["curve"], 1e-300, 1e300))
        line.set_label(view["label"] or None)
    _set_step_scale(ax, longest, log_steps)
    loss.moving.relim()
    loss.moving.autoscale_view(scaley=False)
    if log_steps:
        ax.set_xlim(0, longest * 1.3)
    ax.set_ylim(TOL / 30, max(10.0, min(1e12, max(view["curve"].max() for view in views) * 3)))
    if any(view["label"] for view in views) and len(views) > 1:
        loss.moving.legend(fontsize=7)


# ----------------------------------------------------------------------------------------
# The panel: feature-scale ratio, learning rate, correlation, preprocessing
# ----------------------------------------------------------------------------------------


def compute_gd_two_features(scale_ratio=10.0, learning_rate=10**-1.8, correlation=0.0,
                            features="raw") -> dict:
    """Gradient descent from w = 0 on a two-feature least-squares problem whose feature 2 is
    ``scale_ratio`` times wider than feature 1, with the given correlation; the features are
    used raw, z-scored or whitened. Returns the view plus a two-line status."""
    # z-scoring and whitening remove feature 2's scale exactly, up to rounding: those views are
    # built at ratio 1, so that the disabled ratio slider cannot move them by a rounding error
    x, y = two_feature_problem(scale_ratio if features == "raw" else 1.0, correlation)
    if features == "z-score":
        x, names = zscore(x), (_("w1 (z-scored feature 1)"), _("w2 (z-scored feature 2)"))
    elif features == "whitened (ZCA)":
        x, names = whiten(x, method="zca"), (_("w1 (whitened)"), _("w2 (whitened)"))
    else:
        names = (_("w1 (feature 1, std 1)"), _("w2 (feature 2, std {value})").format(value=f"{scale_ratio:.3g}"))
    view = gd_view(LeastSquares(x, y), learning_rate, label=_("{features} features").format(features=_(features)), names=names)
    best = view["best_steps"]
    view["summary"] = (
        _("Hessian eigenvalues λ = {value}, {value2}  ·  κ = λ_max/λ_min = {kappa}"
          "  ·  largest stable learning rate 2/λ_max = {lr_max}").format(
            value=_fmt(view['eigenvalues'][0]), value2=_fmt(view['eigenvalues'][1]), kappa=_fmt(view['kappa']),
            lr_max=_fmt(view['lr_max']))
        + "\n"
        + (_("the best fixed learning rate, 2/(λ_min+λ_max) = {value}, needs {steps:,} steps") if best != 1
           else _("the best fixed learning rate, 2/(λ_min+λ_max) = {value}, needs {steps:,} step")).format(
            value=_fmt(view['best_lr']), steps=best)
    )
    return view


def draw_gd_two_features(view):
    """The panel's figure: the bowl and path, the loss curve, the run's status above and the
    bowl's numbers below.

    The bowl's axes (ticks, labels), the loss curve's axes and the numbers at the foot are
    the still layer, drawn by a ``Backdrop`` once per problem and range of the loss plot (the
    last few are kept and pasted back). The curves, the path and the status are drawn on
    every move."""
    figure = draw_gd_views([view], curve=True, width=3.6, still_loss=True)
    artists = figure.artists_to_update
    bowl, loss = artists.bowls[0].ax, artists.loss.ax
    _few_decades(loss.yaxis)
    _place_axis_labels(bowl, below=19.0, left=30.4)  # clears tick labels such as "−0.5"
    _place_axis_labels(loss, below=19.0, left=28.3)  # and "10⁻⁶"
    artists.summary = figure.text(0.5, 0.01, "", ha="center", va="bottom", fontsize=8)
    figure.subplots_adjust(bottom=0.25, top=0.8)
    _place_overlays(artists.bowls, artists.loss)
    # two still layers, each pasted from its own region: the bowl's (with the numbers at the
    # foot) changes with the problem, the loss plot's with the run's length and loss range
    artists.backdrop = Backdrop(figure, [bowl, artists.summary], keys=16, own_region=True)
    artists.loss_backdrop = Backdrop(figure, [loss], keys=16, own_region=True)
    _show_status(figure, view)
    return figure


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(value, position=None) -> str:
    """A log axis' tick label, 10⁻⁶, in plain text: mathtext (10^{-6}) is several times
    slower to draw, and the labels are redrawn on every slider move."""
    return "10" + str(round(np.log10(value))).translate(_SUPERSCRIPTS) if value > 0 else ""


def _few_decades(axis) -> None:
    """A log axis that is quick to redraw: a few labelled decades in plain text (10⁻⁶), no
    minor ticks (the loss axis may span 20 decades)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    axis.set_major_locator(LogLocator(numticks=7))
    axis.set_major_formatter(FuncFormatter(_power_of_ten))
    axis.set_minor_locator(NullLocator())


def _place_axis_labels(ax, below: float, left: float) -> None:
    """Put the x label ``below`` points under the axes and the y label ``left`` points to their
    left: where matplotlib puts them next to these tick labels, but fixed, so that it does not
    measure every tick label again to place them each time the figure is drawn."""
    from matplotlib.transforms import ScaledTranslation

    def shifted(right, up):
        return ax.transAxes + ScaledTranslation(right / 72, up / 72, ax.figure.dpi_scale_trans)

    ax.xaxis.set_label_coords(0.5, 0.0, transform=shifted(0.0, -below))
    ax.yaxis.set_label_coords(0.0, 0.5, transform=shifted(-left, 0.0))


def update_gd_two_features(figure, view) -> None:
    """Redraw a figure made by ``draw_gd_two_features`` in place for a new view."""
    _show_views(figure, [view])
    _show_status(figure, view)


def _show_status(figure, view) -> None:
    """The run's status as the figure's title, the bowl's numbers at its foot."""
    figure.suptitle(view["status"], fontsize=11, color="crimson" if view["diverged"] else "darkgreen")
    artists = figure.artists_to_update
    artists.summary.set_text(view["summary"])
    # another problem (limits, feature names, numbers) or another range of the loss plot: the
    # backdrop draws its layer again (or pastes it, for a problem and range shown before)
    loss = artists.loss.ax
    artists.backdrop.redraw_if_changed((view["xlim"], view["ylim"], view["names"], view["summary"]))
    artists.loss_backdrop.redraw_if_changed((loss.get_xscale(), loss.get_xlim(), loss.get_ylim()))


PANELS = [
    Panel(
        "gradient descent: feature scale and learning rate",
        compute_gd_two_features,
        draw_gd_two_features,
        update=update_gd_two_features,
        controls=[
            Control("scale_ratio", "log", 10.0, low=1.0, high=100.0, step=0.1,
                    description=N_("feature-scale ratio"), test_values=(1.0, 10.0, 100.0),
                    # z-scoring and whitening remove the scales: the ratio no longer matters
                    active_when={"features": ("raw",)}),
            Control("learning_rate", "log", 10**-1.8, low=1e-4, high=3.0, step=0.1,
                    description=N_("learning rate"), test_values=(1e-4, 10**-1.8, 3.0)),
            Control("correlation", "float", 0.0, low=0.0, high=0.95, step=0.05,
                    description=N_("correlation")),
            Control("features", "choice", "raw", options=FEATURES, description=N_("features")),
        ],
    )
]
