"""Panels and figures of notebook 05: which values share one mean and variance.

- ``draw_cube(ax, mask)``: the familiar cube of Wu & He (2018, Figure 2): N along the depth,
  C across, H x W up; shaded columns = the values that share one mean and variance.
- ``draw_norm_cubes(...)``: the four cubes side by side (batch, layer, instance, group).
- ``compute_shared_statistics`` / ``draw_shared_statistics`` / ``update_shared_statistics``:
  the widget. Pick a normalization, a sample and a channel; see the set of values averaged
  together (in the cube) and the normalized feature maps of a few MNIST images (shared tiles
  in colour, the others faded). ``update`` redraws the kept figure in place.

The computations live in ``helpers.norms``; this module only arranges and draws.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from helpers.backdrop import Backdrop, overlay_axes
from helpers.data import DataFileError
from helpers.i18n import N_, _
from helpers.norms import (
    NORMALIZATIONS,
    normalize_feature_map,
    shares_statistics_with,
    statistics_labels,
    values_per_statistic,
)
from helpers.panel import Control, Notice, Panel

__all__ = [
    "PANELS",
    "compute_shared_statistics",
    "default_feature_maps",
    "draw_cube",
    "draw_norm_cubes",
    "draw_shared_statistics",
    "make_normalization_panel",
    "update_shared_statistics",
]

SHARED_COLOR = "#4c72b0"  # the values that share the chosen statistics
SELECTED_COLOR = "#1b2f5c"  # the chosen (sample, channel) itself
OTHER_COLOR = "#f4f4f4"
EDGE_COLOR = "#555555"

NAMES = {
    "batch": N_("Batch norm"),
    "layer": N_("Layer norm"),
    "instance": N_("Instance norm"),
    "group": N_("Group norm"),
}
TITLES = {
    "batch": N_("Batch norm: over (N, H, W)"),
    "layer": N_("Layer norm: over (C, H, W)"),
    "instance": N_("Instance norm: over (H, W)"),
    "group": N_("Group norm: over (C/G, H, W)"),
}


# ----------------------------------------------------------------------------------------
# The cube
# ----------------------------------------------------------------------------------------


def _cube_polygons(batch_size, channels, height, depth_dx, depth_dy):
    """The visible faces of each (sample, channel) column, back to front (painter's order).

    Returns a list of (polygon (4, 2), sample, channel, face) with face in
    {"right", "top", "front"}. Sample 0 is the front slice; channels run left to right;
    H x W is the vertical extent of every column.
    """
    polygons = []
    for n in range(batch_size - 1, -1, -1):  # back to front
        x0, y0 = n * depth_dx, n * depth_dy
        for c in range(channels):  # left to right: column c + 1 hides c's right face
            left, right = x0 + c, x0 + c + 1
            bottom, top = y0, y0 + height
            front = [(left, bottom), (right, bottom), (right, top), (left, top)]
            top_face = [(left, top), (right, top), (right + depth_dx, top + depth_dy),
                        (left + depth_dx, top + depth_dy)]
            right_face = [(right, bottom), (right + depth_dx, bottom + depth_dy),
                          (right + depth_dx, top + depth_dy), (right, top)]
            polygons += [(right_face, n, c, "right"), (top_face, n, c, "top"),
                         (front, n, c, "front")]
    return polygons


DEPTH_DX, DEPTH_DY = 0.55, 0.45  # how far each sample's slice sits behind the one before


def _cube_height(channels, height=None):
    """The height of the H x W axis in channel widths (default: about C / 2.5)."""
    return max(2.0, channels / 2.5) if height is None else height


def _cube_colours(mask, selected=None):
    """Face and edge colours of the cube's polygons, in ``_cube_polygons``'s order: the
    chosen column dark, the shaded ones blue, the others see-through grey."""
    from matplotlib.colors import to_rgb

    batch_size, channels = mask.shape
    shade = {"front": 1.0, "top": 0.82, "right": 0.68}
    selected_rgb, shared_rgb, other_rgb = (np.array(to_rgb(colour)) for colour in
                                           (SELECTED_COLOR, SHARED_COLOR, OTHER_COLOR))
    face_colors, edge_colors = [], []
    for _part, n, c, face in _cube_polygons(batch_size, channels, 1.0, DEPTH_DX, DEPTH_DY):
        if selected is not None and (n, c) == tuple(selected):
            rgb, alpha = selected_rgb, 1.0
        elif mask[n, c]:
            rgb, alpha = shared_rgb, 1.0
        else:  # see-through, so that shaded columns inside the cube stay visible
            rgb, alpha = other_rgb, 0.35
        face_colors.append((*(rgb * shade[face]), alpha))
        edge_colors.append((0.33, 0.33, 0.33, 0.9 if alpha == 1.0 else 0.35))
    return face_colors, edge_colors


def draw_cube(ax, mask, selected=None, title="", height=None):
    """Draw an (N, C) cube of columns on ``ax``; columns where ``mask`` is True are shaded.

    Args:
        ax:       a matplotlib Axes
        mask:     (N, C) bool, True for the (sample, channel) columns to shade
        selected: optional (sample, channel) drawn darker
        title:    axes title
        height:   height of the H x W axis in channel widths (default: about C / 2.5)
    """
    mask = np.asarray(mask, dtype=bool)
    _draw_cube_columns(ax, mask, selected, height)
    _draw_cube_arrows(ax, *mask.shape, height)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _draw_cube_columns(ax, mask, selected=None, height=None):
    """The cube's columns alone, as one PolyCollection."""
    from matplotlib.collections import PolyCollection

    batch_size, channels = mask.shape
    height = _cube_height(channels, height)
    polygons = [polygon for polygon, *_rest in _cube_polygons(batch_size, channels, height,
                                                          DEPTH_DX, DEPTH_DY)]
    face_colors, edge_colors = _cube_colours(mask, selected)
    ax.add_collection(PolyCollection(polygons, facecolors=face_colors, edgecolors=edge_colors,
                                     linewidths=0.5))
    _frame_cube(ax, batch_size, channels, height)


def _draw_cube_arrows(ax, batch_size, channels, height=None):
    """The cube's axis labels, drawn as arrows along its edges."""
    height = _cube_height(channels, height)
    _draw_width_and_height_arrows(ax, channels, height)
    _draw_depth_arrow(ax, batch_size, channels)
    _frame_cube(ax, batch_size, channels, height)


def _draw_width_and_height_arrows(ax, channels, height):
    """The C arrow along the cube's front, the H, W arrow up its side."""
    arrow = dict(arrowstyle="->", color="black", lw=1)
    ax.annotate("", xy=(channels, -0.6), xytext=(0, -0.6), arrowprops=arrow)
    ax.text(channels / 2, -1.15, _("C (channels)"), ha="center", va="center", fontsize=8)
    ax.annotate("", xy=(-0.6, height), xytext=(-0.6, 0), arrowprops=arrow)
    ax.text(-1.0, height / 2, "H, W", ha="center", va="center", rotation=90, fontsize=8)


def _draw_depth_arrow(ax, batch_size, channels):
    """The N arrow along the cube's depth; returns its two artists (arrow, label)."""
    corner = (channels + 0.25, 0)
    arrow = ax.annotate("", xy=(corner[0] + batch_size * DEPTH_DX, corner[1] + batch_size * DEPTH_DY),
                        xytext=corner, arrowprops=dict(arrowstyle="->", color="black", lw=1))
    label = ax.text(corner[0] + batch_size * DEPTH_DX * 0.5 + 0.35,
                    batch_size * DEPTH_DY * 0.5 - 0.35, "N", fontsize=8, ha="left", va="center")
    return arrow, label


def _frame_cube(ax, batch_size, channels, height):
    """Limits around the cube and its arrows, equal aspect, no axis."""
    ax.set_xlim(-1.2, channels + batch_size * DEPTH_DX + 0.3)
    ax.set_ylim(-1.2, height + batch_size * DEPTH_DY + 0.3)
    ax.set_aspect("equal")
    ax.axis("off")


def draw_norm_cubes(batch_size=6, channels=6, num_groups=3, sample=0, channel=0):
    """Wu & He's Figure 2, drawn by code: four cubes, one per normalization, the values that
    share the statistics of (``sample``, ``channel``) shaded. Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(11, 2.7))
    for ax, kind in zip(axes, NORMALIZATIONS):
        mask = shares_statistics_with(kind, batch_size, channels, sample, channel, num_groups)
        title = _(TITLES[kind]) + "\n" + (_("(G = {groups} groups of {size} channels)").format(
            groups=num_groups, size=channels // num_groups) if kind == "group" else "")
        draw_cube(ax, mask, title=title)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.84, wspace=0.08)
    return fig


# ----------------------------------------------------------------------------------------
# The widget: which values share statistics, and what the output looks like
# ----------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def default_feature_maps(num_images: int = 6, seed: int = 0):
    """Feature maps for the widget when the notebook gives none.

    The first conv layer of ``helpers.models.SmallCNN(seed=seed)`` (untrained), applied to
    the first ``num_images`` MNIST test images.

    Returns:
        (feature_maps (num_images, 16, 28, 28) float64, digits (num_images,) int)
    """
    import torch

    from helpers.data import load_mnist
    from helpers.models import SmallCNN

    mnist = load_mnist()
    images = torch.from_numpy(mnist.x_test[:num_images].astype(np.float32) / 255.0)
    model = SmallCNN(norm="batch", seed=seed)
    with torch.no_grad():
        maps = model.conv1(images.unsqueeze(1)).double().numpy()
    return maps, mnist.y_test[:num_images].astype(int)


def _divisors(n: int) -> list:
    return [d for d in range(1, n + 1) if n % d == 0]


def compute_shared_statistics(kind="batch", groups=4, batch_size=6, sample=0, channel=0,
                              feature_maps=None, digits=None):
    """Which values share the statistics of (sample, channel), and the normalized maps.

    Args:
        kind:         "batch", "layer", "instance" or "group"
        groups:       G for group norm (must divide the channels)
        batch_size:   how many of the feature maps form the batch (1 .. N)
        sample, channel: the value whose statistics we follow (clamped into the batch)
        feature_maps: (N, C, H, W) array; None uses ``default_feature_maps()``
        digits:       (N,) labels of the images, for the row labels (optional)

    Returns:
        a dict for ``draw_shared_statistics``, or a Notice when the settings make no sense
        (groups that do not divide C; batch norm on a batch of one image). Its
        ``row_labels`` name every image of ``feature_maps``, in the batch or not.
    """
    if feature_maps is None:
        try:
            feature_maps, digits = default_feature_maps()
        except DataFileError as error:
            return Notice(_("The MNIST file could not be read, so there are no feature maps to show: {error}").format(error=error))
    feature_maps = np.asarray(feature_maps, dtype=np.float64)
    total, channels, height, width = feature_maps.shape
    batch_size = int(min(max(batch_size, 1), total))
    maps = feature_maps[:batch_size]
    notes = []
    if not 0 <= sample < batch_size:
        notes.append(_("sample {sample} is not in a batch of {batch_size}: showing sample {last}").format(
            sample=sample, batch_size=batch_size, last=batch_size - 1))
        sample = min(max(sample, 0), batch_size - 1)
    channel = int(min(max(channel, 0), channels - 1))

    if kind == "group" and channels % groups:
        return Notice(
            _("Group norm splits the {channels} channels into groups of equal size, so the "
            "number of groups must divide {channels}: {groups} does not "
            "({channels} / {groups} = {value:.2f}). Choose one of "
            "{value2}. (G = 1 is layer norm, "
            "G = {channels} is instance norm.)").format(channels=channels, groups=groups, value=channels / groups, value2=', '.join(map(str, _divisors(channels))))
        )
    if kind == "batch" and batch_size == 1:
        batch_out = normalize_feature_map(maps, "batch")
        instance_out = normalize_feature_map(maps, "instance")
        difference = float(np.abs(batch_out - instance_out).max())
        return Notice(
            _("A batch of one image: batch norm's statistics over (N, H, W) then come from "
            "this one image's {height} x {width} positions, which is exactly instance norm "
            "(largest difference between the two outputs here: {difference:.1e}). The "
            "'batch' no longer mixes images, and the running statistics learned this way "
            "describe single images, not the population. Choose a batch size of 2 or more, "
            "or pick 'instance'.").format(height=height, width=width, difference=difference)
        )

    labels = statistics_labels(kind, batch_size, channels, groups)
    mask = shares_statistics_with(kind, batch_size, channels, sample, channel, groups)
    shared_values = maps[mask]  # (K, H, W): the values averaged together
    normalized = normalize_feature_map(maps, kind, groups)
    count = values_per_statistic(kind, maps.shape, groups)
    assert shared_values.size == count
    if kind == "group" and groups == 1:
        notes.append(_("G = 1: one group holds every channel, this is layer norm"))
    if kind == "group" and groups == channels:
        notes.append(_("G = {channels}: one channel per group, this is instance norm").format(channels=channels))
    return dict(
        kind=kind, groups=groups, batch_size=batch_size, sample=sample, channel=channel,
        labels=labels, mask=mask, normalized=normalized, count=count,
        number_of_statistics=len(np.unique(labels)),
        shared_mean=float(shared_values.mean()), shared_std=float(shared_values.std()),
        digits=None if digits is None else np.asarray(digits)[:batch_size], notes=notes,
        row_labels=[f"{i}" + ("" if digits is None else f" ('{digits[i]}')") for i in range(total)],
    )


def _mosaic(normalized, mask, selected, rows=None, vmax=3.0, pad=2):
    """One RGB image: an N x C grid of feature-map tiles on a shared colour scale,
    tiles outside ``mask`` faded towards white, a dark frame around ``selected``; ``rows``
    (default N) rows in all, those below the batch left blank."""
    import matplotlib

    n, c, h, w = normalized.shape
    rows = n if rows is None else rows
    cmap = matplotlib.colormaps["RdBu_r"]
    rgb = cmap(np.clip((normalized + vmax) / (2 * vmax), 0, 1))[..., :3]  # (N, C, H, W, 3)
    faded = np.where(mask[:, :, None, None, None], rgb, 0.25 * rgb + 0.75)
    tiles = np.ones((rows, c, h + pad, w + pad, 3))  # each tile with its padding right and below
    tiles[:n, :, :h, :w] = faded
    mosaic = np.ones((rows * (h + pad) + pad, c * (w + pad) + pad, 3))
    mosaic[pad:, pad:] = tiles.transpose(0, 2, 1, 3, 4).reshape(rows * (h + pad), c * (w + pad), 3)
    i, j = selected
    top, left = i * (h + pad), j * (w + pad)
    dark = np.array([0.1, 0.1, 0.1])
    mosaic[top:top + h + 2 * pad, left:left + pad] = dark
    mosaic[top:top + h + 2 * pad, left + w + pad:left + w + 2 * pad] = dark
    mosaic[top:top + pad, left:left + w + 2 * pad] = dark
    mosaic[top + h + pad:top + h + 2 * pad, left:left + w + 2 * pad] = dark
    return mosaic


def draw_shared_statistics(result):
    """Cube (left) and the normalized feature maps (right) for ``compute_shared_statistics``.

    The layout is fixed by the feature maps (every image has a row, the cube room for all of
    them), so that no control makes it jump: a smaller batch leaves rows blank and a shallower
    cube. Two layers, as in notebook 04's panel (``helpers.panels.inference_statistics``): still axes
    with the arrows and the row and column labels, drawn once by a ``Backdrop``, and
    see-through overlays with what a control changes (the cube's columns and depth, the maps,
    the titles).
    """
    import matplotlib.pyplot as plt

    fig, (cube_frame, maps_frame) = plt.subplots(1, 2, figsize=(10, 3.3),
                                                 gridspec_kw=dict(width_ratios=[1, 1.9]))
    fig.subplots_adjust(left=0.02, right=0.99, bottom=0.12, top=0.80, wspace=0.2)
    artists = dict(cube_frame=cube_frame, maps_frame=maps_frame,
                   cube=overlay_axes(cube_frame), maps=overlay_axes(maps_frame))
    _lay_out(artists, result)
    artists["backdrop"] = Backdrop(fig, [cube_frame, maps_frame])
    fig._panel_artists = artists
    update_shared_statistics(fig, result)
    return fig


def _lay_out(artists, result, pad=2):
    """What the feature maps' shape fixes: the cube's room and its C and H x W arrows, the
    grid of maps with a row per image and a column per channel."""
    from matplotlib.collections import PolyCollection

    rows, (_n, c, h, w) = len(result["row_labels"]), result["normalized"].shape
    height = _cube_height(c)
    cube_frame, cube = artists["cube_frame"], artists["cube"]
    _draw_width_and_height_arrows(cube_frame, c, height)
    _frame_cube(cube_frame, rows, c, height)
    # the columns and the N arrow change with the batch size: ``update`` draws them
    artists["cube_columns"] = cube.add_collection(PolyCollection([], linewidths=0.5))
    artists["depth"], artists["depth_arrow"] = None, ()
    _frame_cube(cube, rows, c, height)

    # the headers: fixed words in the still axes, what changes in the overlays
    _header(cube_frame, 0, _("(shaded: the set of the chosen sample and channel)"))
    artists["cube_header"] = _header(cube, 1, "")
    _header(artists["maps_frame"], 1, _("normalized feature maps (colour scale -3 .. 3; "
                                        "faded: other statistics)"))
    _header(artists["maps_frame"], 0, _("the shaded set before normalizing:  "), ha="right")
    artists["shared_values"] = _header(artists["maps"], 0, "", ha="left")
    artists["notes"] = _header(artists["maps"], 2, "", color="#a05a00")

    maps, maps_frame = artists["maps"], artists["maps_frame"]
    artists["image"] = maps.imshow(np.ones((rows * (h + pad) + pad, c * (w + pad) + pad, 3)),
                                   interpolation="nearest")
    maps.set_axis_off()
    artists["outside_batch"] = maps.text(sum(maps.get_xlim()) / 2, 0, "", ha="center",
                                         va="center", fontsize=8, color="0.4")
    maps_frame.set_aspect("equal")
    maps_frame.set_xticks([pad + j * (w + pad) + w / 2 for j in range(c)])
    maps_frame.set_xticklabels([str(j) for j in range(c)], fontsize=7)
    maps_frame.set_yticks([pad + i * (h + pad) + h / 2 for i in range(rows)])
    maps_frame.set_yticklabels(result["row_labels"], fontsize=7)
    maps_frame.set_xlabel(_("channel"), fontsize=8)
    maps_frame.set_ylabel(_("sample (digit)"), fontsize=8)
    maps_frame.tick_params(length=0)
    for spine in maps_frame.spines.values():
        spine.set_visible(False)


def update_shared_statistics(figure, result, pad=2):
    """Show another result in a figure made by ``draw_shared_statistics`` (the panel's
    ``update``): the cube's columns, the maps, the titles."""
    artists = figure._panel_artists
    rows, (n, c, h, _w) = len(result["row_labels"]), result["normalized"].shape
    selected = (result["sample"], result["channel"])
    cube = artists["cube"]
    if artists["depth"] != n:  # a new batch size: a deeper or shallower cube
        artists["cube_columns"].set_verts([polygon for polygon, *_rest in _cube_polygons(
            n, c, _cube_height(c), DEPTH_DX, DEPTH_DY)])
        for artist in artists["depth_arrow"]:
            artist.remove()
        artists["depth_arrow"], artists["depth"] = _draw_depth_arrow(cube, n, c), n
    face_colors, edge_colors = _cube_colours(result["mask"], selected)
    artists["cube_columns"].set_facecolor(face_colors)
    artists["cube_columns"].set_edgecolor(edge_colors)

    artists["image"].set_data(_mosaic(result["normalized"], result["mask"], selected, rows))
    outside = artists["outside_batch"]
    outside.set_text(_("not in the batch of {n}").format(n=n) if n < rows else "")
    outside.set_y(pad + (n + rows) / 2 * (h + pad) - pad / 2)

    kind = result["kind"]
    name = _(NAMES[kind]) + (f" (G = {result['groups']})" if kind == "group" else "")
    artists["cube_header"].set_text(_("{name}: {number_of_statistics} means/variances,\n"
                                    "each over {count:,} values").format(name=name, number_of_statistics=result['number_of_statistics'], count=result['count']))
    artists["shared_values"].set_text(_("mean {shared_mean:.3f}, "
                                      "std {shared_std:.3f}").format(shared_mean=result['shared_mean'], shared_std=result['shared_std']))
    artists["notes"].set_text("; ".join(result["notes"]))


def _header(ax, line, text, **style):
    """A line of text above ``ax``: line 0 just above it, line 1 above that...; centred unless
    ``ha`` says otherwise."""
    return ax.annotate(text, xy=(0.5, 1.0), xycoords="axes fraction",
                       xytext=(0, 5 + 11 * line), textcoords="offset points",
                       **{"ha": "center", "va": "baseline", "fontsize": 9, **style})


def make_normalization_panel(feature_maps=None, digits=None) -> Panel:
    """The widget's Panel, on the given (N, C, H, W) feature maps (default: an untrained
    SmallCNN's first conv layer on six MNIST test images)."""
    if feature_maps is None:
        channels, total = 16, 6
    else:
        total, channels = np.asarray(feature_maps).shape[:2]

    def compute(kind, groups, batch_size, sample, channel):
        return compute_shared_statistics(kind, groups, batch_size, sample, channel,
                                         feature_maps=feature_maps, digits=digits)

    return Panel("which values share one mean and variance", compute, draw_shared_statistics, [
        Control("kind", "choice", "batch", options=NORMALIZATIONS, description=N_("normalization")),
        Control("groups", "int", 4, low=1, high=channels, description=N_("groups G (group norm)"),
                test_values=(1, 3, 4, channels), active_when={"kind": ("group",)}),
        Control("batch_size", "int", total, low=1, high=total, description=N_("batch size N")),
        Control("sample", "int", 0, low=0, high=total - 1, description=N_("sample")),
        Control("channel", "int", 0, low=0, high=channels - 1, description=N_("channel")),
    ], update=update_shared_statistics)


PANELS = [make_normalization_panel()]
