"""Notebook 09's panel: one global batch split over k processes, normalized per process or
synchronized.

A fixed, seeded pool of examples (8 channels) comes from four "domains" whose means differ,
like images from different cameras. The panel gives each of ``processes`` processes
``per_process`` examples, either drawn at random from the whole pool ("shuffled") or each
from one domain ("one domain per process", as when each GPU reads its own shard of a
dataset stored by source). It shows, for channel 0:

(a) each process's batch mean and standard deviation, against the whole batch's;
(b) every example's normalized value with its process's statistics (or with the
    synchronized ones), against BN on the whole batch;
(c) the RMS difference between the two (over all channels), for every per-process batch
    size, at the chosen number of processes and sharding.

Everything is numpy on a small precomputed pool: no process group is started on a move.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from helpers.backdrop import Backdrop, overlay_axes
from helpers.i18n import N_, _
from helpers.panel import Control, Notice, Panel

__all__ = ["PANELS", "SHARDINGS", "compute_process_split", "draw_process_split",
           "update_process_split"]

SHARDINGS = (N_("shuffled (i.i.d.)"), N_("one domain per process"))  # values compared against: translated where shown
DOMAINS = 4
PER_DOMAIN = 256  # pool rows per domain: enough for 16 processes x 64 examples
CHANNELS = 8
MAX_PROCESSES = 16
MAX_PER_PROCESS = 64
CURVE_SIZES = (2, 4, 8, 16, 32, 64)
EPS = 1e-5


@lru_cache(maxsize=1)
def _pool():
    """(DOMAINS, PER_DOMAIN, CHANNELS) seeded values, and a fixed shuffle of all rows."""
    rng = np.random.default_rng(9)
    domain_means = np.linspace(-1.5, 1.5, DOMAINS)[:, None] * rng.uniform(0.5, 1.0, CHANNELS)
    values = rng.normal(size=(DOMAINS, PER_DOMAIN, CHANNELS)) + domain_means[:, None, :]
    order = rng.permutation(DOMAINS * PER_DOMAIN)
    return values, order


def _shards(processes, per_process, sharding):
    """(processes, per_process, CHANNELS): the examples each process holds."""
    values, order = _pool()
    if sharding == SHARDINGS[0]:
        rows = values.reshape(-1, CHANNELS)[order[:processes * per_process]]
        return rows.reshape(processes, per_process, CHANNELS)
    shards = []
    for rank in range(processes):
        domain, turn = rank % DOMAINS, rank // DOMAINS
        shards.append(values[domain, turn * per_process:(turn + 1) * per_process])
    return np.stack(shards)


def _normalize(x, axis):
    mean = x.mean(axis=axis, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=axis, keepdims=True) + EPS)


def _gap(shards):
    """RMS difference, over all values and channels, of per-process BN and whole-batch BN."""
    whole = _normalize(shards.reshape(-1, CHANNELS), 0).reshape(shards.shape)
    return float(np.sqrt(np.mean((_normalize(shards, 1) - whole) ** 2)))


@lru_cache(maxsize=64)
def _curve(processes, sharding):
    return np.array([_gap(_shards(processes, n, sharding)) for n in CURVE_SIZES])


def compute_process_split(processes=8, per_process=4, sharding=SHARDINGS[0], synchronized=False):
    """The panel's numbers for one setting (a dict for ``draw_process_split``) or a Notice.

    processes: 1..16; per_process: examples per process, 1..64; sharding: one of SHARDINGS;
    synchronized: normalize with the whole batch's statistics (sync BN) instead of each
    process's own.
    """
    processes, per_process = int(processes), int(per_process)
    total = processes * per_process
    if total < 2:
        return Notice(_("One example in the whole batch has no variance: even synchronized BN "
                      "cannot normalize it (torch: \"Expected more than 1 value per channel "
                      "when training\"). Use more processes or more examples per process."))
    if per_process < 2 and not synchronized:
        return Notice(
            _("With one example per process, per-process BN has one value per channel here (the "
            "data are (N, C), as after a fully connected layer), no variance to normalize with: "
            "torch's BatchNorm raises ValueError \"Expected more than 1 value per channel when "
            "training\" on every process. Tick <b>synchronized</b>: sync BN normalizes the "
            "{total} examples of all {processes} processes together, which works (torch's "
            "SyncBatchNorm allows one value per process in a group of two or more).").format(total=total, processes=processes))
    shards = _shards(processes, per_process, sharding)
    whole = shards.reshape(-1, CHANNELS)
    whole_hat = _normalize(whole, 0).reshape(shards.shape)
    own_hat = whole_hat if synchronized else _normalize(shards, 1)
    curve = np.zeros(len(CURVE_SIZES)) if synchronized else _curve(processes, sharding)
    gap = float(np.sqrt(np.mean((own_hat - whole_hat) ** 2)))
    return dict(
        processes=processes, per_process=per_process, sharding=sharding,
        synchronized=bool(synchronized),
        process_mean=shards[:, :, 0].mean(axis=1), process_std=shards[:, :, 0].std(axis=1),
        whole_mean=float(whole[:, 0].mean()), whole_std=float(whole[:, 0].std()),
        whole_hat=whole_hat[:, :, 0].ravel(), own_hat=own_hat[:, :, 0].ravel(),
        rank=np.repeat(np.arange(processes), per_process), gap=gap,
        curve=curve, curve_sizes=np.array(CURVE_SIZES),
    )


def draw_process_split(result):
    """Three small plots (see the module docstring) for a result of ``compute_process_split``."""
    figure = _build()
    update_process_split(figure, result)
    return figure


def _build():
    import matplotlib.pyplot as plt

    fig, still = plt.subplots(1, 3, figsize=(11, 3.5))
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.16, top=0.80, wspace=0.28)
    ax_stats, ax_values, ax_curve = still
    moving = [overlay_axes(ax) for ax in still]
    ax_stats.set(xlabel=_("process"), ylim=(-4, 4))
    ax_stats.set_title(_("(a) channel 0: each process's mean ± std"), fontsize=10)
    ax_values.set(xlabel=_("BN on the whole batch"), ylabel=_("what the process computes"),
                  xlim=(-3.5, 3.5), ylim=(-3.5, 3.5))
    ax_values.set_title(_("(b) normalized values, channel 0"), fontsize=10)
    ax_values.plot([-3.5, 3.5], [-3.5, 3.5], color="0.6", lw=1, ls=":")
    ax_curve.set(xscale="log", xlabel=_("examples per process"), ylabel=_("RMS difference"),
                 ylim=(-0.05, 1.6), xlim=(1.6, 80))
    ax_curve.set_xticks(CURVE_SIZES, [str(n) for n in CURVE_SIZES])
    ax_curve.minorticks_off()
    ax_curve.set_title(_("(c) per-process BN vs whole batch"), fontsize=10)
    for ax in still:
        ax.grid(alpha=0.3)
    a, b, c = moving
    artists = dict(
        band=a.fill_between([0, 1], [0, 0], [0, 0], color="0.85", lw=0),
        whole_mean=a.plot([], [], color="k", lw=1.5)[0],
        spread=a.plot([], [], color="C0", lw=2)[0],
        mean=a.plot([], [], "o", color="C0", ms=4)[0],
        points=b.scatter(np.zeros(1), np.zeros(1), s=6, c=np.zeros(1), cmap="tab20",
                         vmin=0, vmax=MAX_PROCESSES - 1),
        curve=c.plot([], [], "o-", color="C1", ms=4)[0],
        marker=c.plot([], [], "o", color="C3", ms=9, mfc="none", mew=2)[0],
        gap_text=c.text(0.97, 0.93, "", transform=c.transAxes, ha="right", va="top", fontsize=9),
        headline=fig.text(0.5, 0.95, "", ha="center", va="baseline", fontsize=10),
        still=still,
    )
    artists["backdrop"] = Backdrop(fig, list(still))
    fig._panel_artists = artists
    return fig


def update_process_split(figure, result):
    """Put a new result into a figure made by ``draw_process_split``."""
    artists = figure._panel_artists
    k = result["processes"]
    ranks = np.arange(k)
    if artists["backdrop"].redraw_if_changed(k):
        ax_stats = artists["still"][0]
        ax_stats.set_xlim(-0.7, k - 0.3)
        ax_stats.set_xticks(ranks if k <= 8 else ranks[::2])
    low, high = result["whole_mean"] - result["whole_std"], result["whole_mean"] + result["whole_std"]
    artists["band"].set_verts([np.array([[-1, low], [k, low], [k, high], [-1, high]])])
    artists["whole_mean"].set_data([-1, k], [result["whole_mean"]] * 2)
    mean, std = result["process_mean"], result["process_std"]
    if result["synchronized"]:  # every process normalizes with the whole batch's statistics
        mean, std = np.full(k, result["whole_mean"]), np.full(k, result["whole_std"])
    segments_x = np.repeat(ranks, 3).astype(float)
    segments_y = np.column_stack([mean - std, mean + std, np.full(k, np.nan)]).ravel()
    segments_x[2::3] = np.nan
    artists["spread"].set_data(segments_x, segments_y)
    artists["mean"].set_data(ranks, mean)
    points = artists["points"]
    points.set_offsets(np.column_stack([result["whole_hat"], result["own_hat"]]))
    points.set_array(result["rank"].astype(float))
    artists["curve"].set_data(result["curve_sizes"], result["curve"])
    n = result["per_process"]
    shown = n in result["curve_sizes"]
    artists["marker"].set_data([n] if shown else [], [result["gap"]] if shown else [])
    artists["gap_text"].set_text(_("{k} processes x {n}: RMS {gap:.3f}").format(k=k, n=n, gap=result['gap']))
    mode = (_("synchronized: every process uses the whole batch's statistics") if result["synchronized"]
            else _("per process: each normalizes with its own shard's statistics"))
    artists["headline"].set_text(_("{k} processes x {n} examples = {value}, {sharding}; {mode}").format(k=k, n=n, value=k * n, sharding=_(result['sharding']), mode=mode))


PANELS = [
    Panel(
        "processes: per-process BN vs synchronized BN",
        compute_process_split,
        draw_process_split,
        [
            Control("processes", "int", 8, low=1, high=MAX_PROCESSES, description=N_("processes k")),
            Control("per_process", "int", 4, low=1, high=MAX_PER_PROCESS,
                    description=N_("examples per process"), test_values=(1, 2, 4, 64)),
            Control("sharding", "choice", SHARDINGS[0], options=SHARDINGS, description=N_("shards")),
            Control("synchronized", "toggle", False, description=N_("synchronized (sync BN)")),
        ],
        update=update_process_split,
    )
]
