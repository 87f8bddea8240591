"""Notebook 06's experiments: the paper's Figure 1 network trained on MNIST, remembered.

Every run goes through ``run_figure1``, which trains ``Figure1MLP`` with
``helpers.training.train_classifier`` and keeps the result in memory: asking again for the
same settings returns the very same ``Run`` object at once. So the notebook's runs feed its
widget, and a sweep that repeats a setting costs nothing the second time.

- ``run_figure1(batchnorm, steps, lr, init_std, seed, ...) -> Run``: one training run
- ``learning_rate_sweep(...)``, ``init_scale_sweep(...)``: the plain and the BN network over
  a list of learning rates / initial weight scales (dicts value -> {"plain": Run, "bn": Run})
- ``stuck_units(run, x)``: how many of a hidden layer's units answer the same for every image
- ``saturated_fraction(run, x)``: how much of a hidden layer sits in the sigmoid's flat tails
- ``outcome(run) -> str``: "trains", "stalls" or "diverges", and ``describe(run)`` in words
- ``distribution_shift(history, from_step)``: how far each tracked unit's percentiles moved
- ``accuracy_table(runs, steps)``: the small text table printed under Figure 1

Settings follow the paper's Section 4.1 (3 x 100 sigmoid units, mini-batches of 60, plain SGD,
small Gaussian initial weights); the learning rate is ours (the paper does not give it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from helpers.data import mnist_tensors
from helpers.models import Figure1MLP
from helpers.training import History, evaluate_accuracy, one_torch_thread, train_classifier

__all__ = [
    "BASE_INIT_STD",
    "BASE_LR",
    "INIT_STDS",
    "LEARNING_RATES",
    "SWEEP_EVAL_SIZE",
    "SWEEP_RECORD_EVERY",
    "SWEEP_STEPS",
    "Run",
    "accuracy_table",
    "cached_run",
    "clear_cache",
    "describe",
    "init_scale_sweep",
    "learning_rate_sweep",
    "distribution_shift",
    "mnist",
    "outcome",
    "run_figure1",
    "saturated_fraction",
    "stuck_units",
]

#: The learning rate of our Figure 1 (the paper does not give one; notebook 06 explains the choice).
BASE_LR = 0.3
#: Standard deviation of the initial weights: "small random Gaussian values".
BASE_INIT_STD = 0.1
#: The learning-rate sweep: 1/3x to 100x the base.
LEARNING_RATES = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
#: The initial-scale sweep.
INIT_STDS = (0.01, 0.1, 0.3, 1.0, 3.0)
#: Length of a sweep run (and of the widget's runs) and how often it is evaluated.
SWEEP_STEPS = 300
SWEEP_RECORD_EVERY = 50
#: Sweep runs are evaluated on the first this many test images (faster; Figure 1 uses all).
SWEEP_EVAL_SIZE = 2_000
#: Below this test accuracy a run has learned (almost) nothing: chance is 10 %.
STALLED_BELOW = 0.2
#: Training accuracy is measured on at most this many training images.
TRAIN_ACCURACY_EXAMPLES = 10_000

LAST_LAYER_UNITS = tuple((-1, unit) for unit in range(10))


@dataclass
class Run:
    """One finished training run.

    Attributes:
        history:         what ``train_classifier`` recorded (test accuracy, percentiles of the
                         tracked units' sigmoid inputs, ...)
        settings:        the arguments of ``run_figure1``
        model:           the trained network, in eval mode (for looking inside it afterwards)
        train_accuracy:  (property) final accuracy on the training images used (at most the
                         first 10,000 of them), in eval mode like the test accuracy; measured
                         the first time it is asked for
    """

    history: History
    settings: dict
    model: torch.nn.Module | None = None
    _train_accuracy: float | None = field(default=None, repr=False)

    @property
    def train_accuracy(self) -> float:
        if self._train_accuracy is None:
            data = mnist()
            size = min(self.settings["train_size"] or len(data.x_train), TRAIN_ACCURACY_EXAMPLES)
            with one_torch_thread():
                self._train_accuracy = evaluate_accuracy(self.model, data.x_train[:size],
                                                         data.y_train[:size])
        return self._train_accuracy

    @property
    def test_accuracy(self) -> float:
        """The last recorded test accuracy."""
        return float(self.history.test_accuracy[-1])

    @property
    def generalization_gap(self) -> float:
        """Final train accuracy minus final test accuracy."""
        return self.train_accuracy - self.test_accuracy


@lru_cache(maxsize=1)
def mnist():
    """MNIST as flat float32 tensors (x (n, 784) in [0, 1], y (n,) int64), loaded once."""
    return mnist_tensors(flatten=True)


_RUNS: dict = {}


def _key(settings: dict) -> tuple:
    return tuple(sorted(settings.items()))


def clear_cache() -> None:
    """Forget every remembered run."""
    _RUNS.clear()


def _settings(batchnorm, steps, lr, init_std, seed, bn_position, dropout, train_size,
              eval_size, record_every, tracked_units) -> dict:
    if bn_position not in ("before", "after"):
        raise ValueError(f"bn_position must be 'before' or 'after', got {bn_position!r}")
    if steps < 1 or record_every < 1:
        raise ValueError(f"steps and record_every must be >= 1, got {steps} and {record_every}")
    if not lr > 0 or not init_std > 0:
        raise ValueError(f"lr and init_std must be positive, got {lr} and {init_std}")
    if train_size is not None and not 60 <= train_size <= 60_000:
        raise ValueError(f"train_size must be None (all 60,000) or in [60, 60000], got {train_size}")
    if eval_size is not None and not 1 <= eval_size <= 10_000:
        raise ValueError(f"eval_size must be None (all 10,000) or in [1, 10000], got {eval_size}")
    return dict(
        batchnorm=bool(batchnorm),
        # the plain network has no BN to place: one cache entry serves both placements
        bn_position=bn_position if batchnorm else None,
        steps=int(steps), lr=float(lr), init_std=float(init_std), seed=int(seed),
        dropout=float(dropout), train_size=train_size, eval_size=eval_size,
        record_every=int(record_every),
        tracked_units=tuple(tuple(unit) for unit in tracked_units),
    )


def cached_run(batchnorm=False, *, steps, lr, init_std=BASE_INIT_STD, seed=0,
               bn_position="before", dropout=0.0, train_size=None, eval_size=None,
               record_every=100, tracked_units=LAST_LAYER_UNITS):
    """The remembered ``Run`` for these settings, or None if it has not been run yet."""
    settings = _settings(batchnorm, steps, lr, init_std, seed, bn_position, dropout,
                         train_size, eval_size, record_every, tracked_units)
    return _RUNS.get(_key(settings))


def run_figure1(batchnorm=False, *, steps, lr, init_std=BASE_INIT_STD, seed=0,
                bn_position="before", dropout=0.0, train_size=None, eval_size=None,
                record_every=100, tracked_units=LAST_LAYER_UNITS, progress=None) -> Run:
    """Train the paper's Figure 1 network on MNIST (or return the remembered run).

    Args:
        batchnorm:     BN in every hidden layer (``bn_position`` "before" the sigmoid, as in
                       the paper, or "after" it)
        steps:         SGD steps with mini-batches of 60
        lr:            learning rate (plain SGD, no momentum)
        init_std:      initial weights ~ N(0, init_std^2)
        seed:          seeds the initial weights and the order of the mini-batches
        dropout:       dropout probability after each hidden layer (0: none)
        train_size:    train on the first ``train_size`` training images (None: all 60,000)
        eval_size:     evaluate on the first ``eval_size`` test images (None: all 10,000)
        record_every:  evaluate on the test images every this many steps
        tracked_units: (layer, unit) pairs whose sigmoid inputs' 15/50/85th percentiles are
                       recorded (default: units 0-9 of the last hidden layer)
        progress:      progress bar: True / False / None (automatic)

    Returns:
        Run; the same object for the same settings, for as long as the process lives.
    """
    settings = _settings(batchnorm, steps, lr, init_std, seed, bn_position, dropout,
                         train_size, eval_size, record_every, tracked_units)
    key = _key(settings)
    if key in _RUNS:
        return _RUNS[key]
    data = mnist()
    x_train, y_train = data.x_train, data.y_train
    if train_size is not None:
        x_train, y_train = x_train[:train_size], y_train[:train_size]
    x_test, y_test = data.x_test[:eval_size], data.y_test[:eval_size]
    model = Figure1MLP(batchnorm=batchnorm, bn_position=bn_position, init_std=init_std,
                       seed=seed, dropout=dropout)
    name = f"BN {bn_position} sigmoid" if batchnorm else "no BN"
    with one_torch_thread():
        history = train_classifier(
            model, x_train, y_train, x_test, y_test, steps=steps, lr=lr,
            record_every=record_every, tracked_units=settings["tracked_units"], seed=seed,
            progress=progress, description=f"{name}, lr {lr:g}, init {init_std:g}")
    run = Run(history=history, settings=settings, model=model.eval())
    _RUNS[key] = run
    return run


def _sweep_pair(*, steps, lr, init_std, seed, bn_position, record_every, progress):
    common = dict(steps=steps, lr=lr, init_std=init_std, seed=seed, record_every=record_every,
                  eval_size=SWEEP_EVAL_SIZE, tracked_units=(), progress=progress)
    return {"plain": run_figure1(False, **common),
            "bn": run_figure1(True, bn_position=bn_position, **common)}


def learning_rate_sweep(learning_rates=LEARNING_RATES, *, steps=SWEEP_STEPS,
                        init_std=BASE_INIT_STD, seed=0, bn_position="before",
                        record_every=SWEEP_RECORD_EVERY, progress=None) -> dict:
    """The plain and the BN network at each learning rate.

    Returns {lr: {"plain": Run, "bn": Run}}. Sweep runs track no units (they are short) and are
    evaluated on the first SWEEP_EVAL_SIZE test images.
    """
    return {lr: _sweep_pair(steps=steps, lr=lr, init_std=init_std, seed=seed,
                            bn_position=bn_position, record_every=record_every, progress=progress)
            for lr in learning_rates}


def init_scale_sweep(init_stds=INIT_STDS, *, steps=SWEEP_STEPS, lr=BASE_LR, seed=0,
                     bn_position="before", record_every=SWEEP_RECORD_EVERY, progress=None) -> dict:
    """The plain and the BN network at each initial weight scale.

    Returns {init_std: {"plain": Run, "bn": Run}}.
    """
    return {std: _sweep_pair(steps=steps, lr=lr, init_std=std, seed=seed,
                             bn_position=bn_position, record_every=record_every, progress=progress)
            for std in init_stds}


@torch.no_grad()
def stuck_units(run: Run, x: torch.Tensor, layer: int = -1, threshold: float = 0.01) -> float:
    """Fraction of a hidden layer's units that give (almost) the same output for every image.

    A unit counts as stuck when the standard deviation of its sigmoid output over the images
    is below ``threshold``: it carries no information about the image, and when it is stuck
    in a flat tail of the sigmoid it passes back almost no gradient either.

    Args:
        run:   a finished run (its trained model is used, in eval mode)
        x:     (N, 784) images, N >= 2
        layer: which hidden layer (-1: the last)
    Returns:
        a number in [0, 1].
    """
    _, preactivations = run.model.eval()(x, return_preactivations=True)
    outputs = torch.sigmoid(preactivations[layer])  # (N, units)
    return (outputs.std(dim=0) < threshold).double().mean().item()


@torch.no_grad()
def saturated_fraction(run: Run, x: torch.Tensor, layer: int = -1, tolerance: float = 0.01) -> float:
    """Fraction of a hidden layer's sigmoid outputs, over units and images, within ``tolerance``
    of 0 or 1: how much of the layer sits in the sigmoid's flat tails.

    Args:
        run:   a finished run (its trained model is used, in eval mode)
        x:     (N, 784) images
        layer: which hidden layer (-1: the last)
    """
    _, preactivations = run.model.eval()(x, return_preactivations=True)
    outputs = torch.sigmoid(preactivations[layer])
    return ((outputs < tolerance) | (outputs > 1 - tolerance)).double().mean().item()


def outcome(run: Run) -> str:
    """"diverges" (the loss exploded and training stopped), "stalls" (test accuracy still
    below 20 % at the end: chance is 10 %) or "trains"."""
    if run.history.diverged:
        return "diverges"
    if run.test_accuracy < STALLED_BELOW:
        return "stalls"
    return "trains"


def describe(run: Run) -> str:
    """The outcome of a run in a few words, e.g. "stalled: 10.3% after 300 steps, loss 6.6"."""
    history = run.history
    if history.diverged:
        last = int(history.steps[-1])
        return f"diverged between steps {last} and {last + run.settings['record_every']} (loss > 1000)"
    if run.test_accuracy < STALLED_BELOW:
        return (f"stalled: {run.test_accuracy:.1%} after {history.steps[-1]} steps, "
                f"loss {history.train_loss[-1]:.3g}")
    return f"trains: {run.test_accuracy:.1%} after {history.steps[-1]} steps"


def distribution_shift(history: History, from_step: int) -> np.ndarray:
    """How far each tracked unit's sigmoid-input distribution moved after ``from_step``.

    For each tracked unit: the mean over the recorded percentiles (15th, 50th, 85th) of
    |percentile at the last record - percentile at ``from_step``|.

    Returns:
        (U,) one value per tracked unit, in the units of the sigmoid's input.
    """
    if history.percentiles.shape[1] == 0:
        raise ValueError("the run tracked no units")
    matches = np.flatnonzero(history.steps == from_step)
    if not len(matches):
        raise ValueError(f"step {from_step} was not recorded (records: {history.steps.tolist()})")
    change = np.abs(history.percentiles[-1] - history.percentiles[matches[0]])  # (U, Q)
    return change.mean(axis=1)


def accuracy_table(runs: dict, steps) -> str:
    """A text table of test accuracy at the given steps, one row per run.

    Args:
        runs:  {row label: Run}
        steps: the steps to report (each must be a recorded step)
    """
    steps = list(steps)
    label_width = max(len(label) for label in runs)
    header = " " * label_width + "".join(f"{'step ' + format(s, ','):>14}" for s in steps)
    lines = [header]
    for label, run in runs.items():
        cells = []
        for step in steps:
            accuracy = run.history.accuracy_at(step)
            cells.append(f"{'-' if math.isnan(accuracy) else format(accuracy, '.1%'):>14}")
        lines.append(f"{label:<{label_width}}" + "".join(cells))
    return "\n".join(lines)
