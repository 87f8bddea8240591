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
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from helpers.data import mnist_tensors
from helpers.i18n import _
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
    "FULL_RECORD_EVERY",
    "FULL_RUN_FILENAME",
    "FULL_RUN_SHA256",
    "FULL_STEPS",
    "REG_EVAL_SIZE",
    "REG_FULL_SEEDS",
    "REG_FULL_STEPS",
    "REG_IMAGES",
    "REG_STEPS",
    "REG_VARIANTS",
    "FullRunRecord",
    "Run",
    "accuracy_table",
    "best_learning_rate",
    "cached_run",
    "clear_cache",
    "describe",
    "init_scale_sweep",
    "learning_rate_sweep",
    "distribution_shift",
    "full_run_plan",
    "load_full_run",
    "load_panel_runs",
    "panel_run_plan",
    "recorded_panel_run",
    "record_panel_runs",
    "mnist",
    "outcome",
    "record_full_run",
    "regularization_settings",
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
        raise ValueError(_("bn_position must be 'before' or 'after', got {bn_position!r}").format(
            bn_position=bn_position))
    if steps < 1 or record_every < 1:
        raise ValueError(_("steps and record_every must be >= 1, got {steps} and {record_every}").format(
            steps=steps, record_every=record_every))
    if not lr > 0 or not init_std > 0:
        raise ValueError(_("lr and init_std must be positive, got {lr} and {init_std}").format(
            lr=lr, init_std=init_std))
    if train_size is not None and not 60 <= train_size <= 60_000:
        raise ValueError(_("train_size must be None (all 60,000) or in [60, 60000], got {train_size}").format(
            train_size=train_size))
    if eval_size is not None and not 1 <= eval_size <= 10_000:
        raise ValueError(_("eval_size must be None (all 10,000) or in [1, 10000], got {eval_size}").format(
            eval_size=eval_size))
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
    if batchnorm:
        name = _("BN before sigmoid") if bn_position == "before" else _("BN after sigmoid")
    else:
        name = _("no BN")
    with one_torch_thread():
        history = train_classifier(
            model, x_train, y_train, x_test, y_test, steps=steps, lr=lr,
            record_every=record_every, tracked_units=settings["tracked_units"], seed=seed,
            progress=progress,
            description=_("{name}, lr {lr:g}, init {init_std:g}").format(name=name, lr=lr, init_std=init_std))
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
    _logits, preactivations = run.model.eval()(x, return_preactivations=True)
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
    _logits, preactivations = run.model.eval()(x, return_preactivations=True)
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
        return _("diverged between steps {last} and {end} (loss > 1000)").format(
            last=last, end=last + run.settings["record_every"])
    if run.test_accuracy < STALLED_BELOW:
        return _("stalled: {accuracy:.1%} after {steps} steps, loss {loss:.3g}").format(
            accuracy=run.test_accuracy, steps=history.steps[-1], loss=history.train_loss[-1])
    return _("trains: {accuracy:.1%} after {steps} steps").format(
        accuracy=run.test_accuracy, steps=history.steps[-1])


def distribution_shift(history: History, from_step: int) -> np.ndarray:
    """How far each tracked unit's sigmoid-input distribution moved after ``from_step``.

    For each tracked unit: the mean over the recorded percentiles (15th, 50th, 85th) of
    |percentile at the last record - percentile at ``from_step``|.

    Returns:
        (U,) one value per tracked unit, in the units of the sigmoid's input.
    """
    if history.percentiles.shape[1] == 0:
        raise ValueError(_("the run tracked no units"))
    matches = np.flatnonzero(history.steps == from_step)
    if not len(matches):
        raise ValueError(_("step {from_step} was not recorded (records: {records})").format(
            from_step=from_step, records=history.steps.tolist()))
    change = np.abs(history.percentiles[-1] - history.percentiles[matches[0]])  # (U, Q)
    return change.mean(axis=1)


def _right(text: str, width: int) -> str:
    """``text`` right-aligned in ``width`` columns of a monospaced font, where a Chinese
    character takes two (``f"{text:>{width}}"`` for Latin text)."""
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return " " * max(width - columns, 0) + text


def accuracy_table(runs: dict, steps) -> str:
    """A text table of test accuracy at the given steps, one row per run.

    Args:
        runs:  {row label: Run}
        steps: the steps to report (each must be a recorded step)
    """
    steps = list(steps)
    label_width = max(len(label) for label in runs)
    header = " " * label_width + "".join(_right(_("step {step:,}").format(step=s), 14) for s in steps)
    lines = [header]
    for label, run in runs.items():
        cells = []
        for step in steps:
            accuracy = run.history.accuracy_at(step)
            cells.append(f"{'-' if math.isnan(accuracy) else format(accuracy, '.1%'):>14}")
        lines.append(f"{label:<{label_width}}" + "".join(cells))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The FULL_RUN record: the paper-length runs, trained once by a maintainer and shipped in data/
# ---------------------------------------------------------------------------------------------

#: The paper's run length, and how often the full runs are evaluated on the 10,000 test images.
FULL_STEPS = 50_000
FULL_RECORD_EVERY = 500
#: Section 6 (regularization): the small training set, its evaluation set, quick and full lengths.
REG_IMAGES = 400
REG_EVAL_SIZE = 2_000
REG_STEPS = 800
REG_FULL_STEPS = 5_000
REG_FULL_SEEDS = (0, 1, 2)
REG_DROPOUT = 0.2
REG_VARIANTS = {"no BN": dict(batchnorm=False), "BN": dict(batchnorm=True),
                "dropout": dict(batchnorm=False, dropout=REG_DROPOUT)}

#: The recorded result of FULL_RUN, made by ``python -m tools.record_full_run``.
FULL_RUN_FILENAME = "bn_in_a_network_full_run.json"
#: Its sha256; ``load_full_run`` refuses a file with any other.
FULL_RUN_SHA256 = "932b3832e0cee070a43d552422bd1c45115ffef5723e97be3055cd43f915c8a6"


def best_learning_rate(sweep: dict, key: str) -> float:
    """The learning rate of a ``learning_rate_sweep`` at which ``key`` ("plain" or "bn") has the
    highest final test accuracy (the smaller rate on a tie)."""
    return max(sweep, key=lambda lr: (sweep[lr][key].test_accuracy, -lr))


def full_run_plan(best_plain_lr: float) -> dict:
    """The Figure 1 runs of the record: {label: keyword arguments of ``run_figure1``}.

    Figure 1's three networks at its learning rate (``BASE_LR``) and initial scale
    (``BASE_INIT_STD``), and the plain network where the notebook's own sweeps serve it better:
    at ``best_plain_lr`` (the best rate of the learning-rate sweep) and at an initial scale of
    0.3 (the best of the initial-scale sweep); the BN network at ``best_plain_lr`` too, so that
    the two can be compared at the same rate.
    """
    common = dict(steps=FULL_STEPS, record_every=FULL_RECORD_EVERY, seed=0)
    return {
        "no BN": dict(batchnorm=False, lr=BASE_LR, init_std=BASE_INIT_STD, **common),
        "BN": dict(batchnorm=True, lr=BASE_LR, init_std=BASE_INIT_STD, **common),
        "BN after": dict(batchnorm=True, bn_position="after", lr=BASE_LR, init_std=BASE_INIT_STD,
                         **common),
        f"no BN, lr {best_plain_lr:g}": dict(batchnorm=False, lr=best_plain_lr,
                                             init_std=BASE_INIT_STD, **common),
        f"BN, lr {best_plain_lr:g}": dict(batchnorm=True, lr=best_plain_lr,
                                          init_std=BASE_INIT_STD, **common),
        "no BN, init 0.3": dict(batchnorm=False, lr=BASE_LR, init_std=0.3, **common),
    }


def regularization_settings(name: str, seed: int, steps: int = REG_STEPS) -> dict:
    """Keyword arguments of ``run_figure1`` for one run of section 6 (400 training images)."""
    return dict(steps=steps, lr=BASE_LR, init_std=BASE_INIT_STD, seed=seed, train_size=REG_IMAGES,
                eval_size=REG_EVAL_SIZE, record_every=steps // 5, tracked_units=(),
                **REG_VARIANTS[name])


#: The record keeps the tracked units' percentiles to this many decimals.
PERCENTILE_DECIMALS = 4


def _float32_list(values) -> list:
    """Values as the shortest decimals that give back the same float32 (NaN as None)."""
    array = np.asarray(values, dtype=np.float32)
    flat = [None if math.isnan(v) else float(str(v)) for v in array.ravel()]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()


def _history_record(run: Run) -> dict:
    history = run.history
    return {
        "steps": [int(s) for s in history.steps],
        "test_accuracy": _float32_list(history.test_accuracy),
        "train_loss": _float32_list(history.train_loss),
        # rounded to 1e-4 (in units of the sigmoid's input: far below what a plot shows)
        "percentiles": np.round(history.percentiles.astype(np.float64), PERCENTILE_DECIMALS).tolist(),
        "tracked_units": [list(unit) for unit in history.tracked_units],
        "quantiles": list(history.quantiles),
        "diverged": bool(history.diverged),
        "train_accuracy": float(run.train_accuracy),
    }


def _train_and_record(settings: dict) -> dict:
    """One run of the record (a worker function: picklable, importable by spawn)."""
    return _history_record(run_figure1(progress=False, **settings))


def record_full_run(path=None, jobs: int = 1) -> tuple[Path, str]:
    """Train every run of the FULL_RUN record and write it as JSON (maintainers only: an hour
    or more of CPU time).

    Args:
        path: where to write (default: the course's data/ folder, ``FULL_RUN_FILENAME``)
        jobs: how many runs train at once, each in its own process on one torch thread
              (the results do not depend on it)
    Returns:
        (path, sha256 of the file written)
    """
    from helpers.data import record_versions, run_each, sha256_of

    sweep = learning_rate_sweep(LEARNING_RATES, init_std=BASE_INIT_STD, progress=False)
    best_plain_lr = best_learning_rate(sweep, "plain")
    figure1 = full_run_plan(best_plain_lr)
    regularization = {(name, seed): regularization_settings(name, seed, REG_FULL_STEPS)
                      for name in REG_VARIANTS for seed in REG_FULL_SEEDS}
    tasks = list(figure1.values()) + list(regularization.values())
    results = run_each(_train_and_record, tasks, jobs)
    figure1_results = dict(zip(figure1, results[:len(figure1)]))
    regularization_results = results[len(figure1):]

    record = {
        "what": "notebook 06's FULL_RUN: the paper-length runs of Figure 1 (section 2) and the "
                "longer regularization runs (section 6), trained once and recorded",
        "command": "python -m tools.record_full_run",
        "versions": record_versions(),
        "best_plain_lr": best_plain_lr,
        "sweep_settings": dict(learning_rates=list(LEARNING_RATES), steps=SWEEP_STEPS,
                               init_std=BASE_INIT_STD, eval_size=SWEEP_EVAL_SIZE),
        "figure1": {label: {"settings": _json_settings(figure1[label]),
                            "history": figure1_results[label]} for label in figure1},
        "regularization": [{"variant": name, "settings": _json_settings(settings), "history": result}
                           for ((name, _seed), settings), result
                           in zip(regularization.items(), regularization_results)],
    }
    if path is None:
        from helpers.data import DataFileError, find_data_file
        try:
            path = find_data_file("mnist.npz").parent / FULL_RUN_FILENAME
        except DataFileError:
            path = Path(FULL_RUN_FILENAME)
    path = Path(path)
    path.write_text(_json_text(record) + "\n", encoding="utf-8")
    return path, sha256_of(path)


def _json_text(value, depth: int = 0) -> str:
    """JSON with one line per key down to the histories' fields, each list on one line."""
    import json

    if isinstance(value, dict) and depth < 4:
        inner = "  " * (depth + 1)
        items = [f"{inner}{json.dumps(key)}: {_json_text(item, depth + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        inner = "  " * (depth + 1)
        return ("[\n" + ",\n".join(inner + _json_text(item, depth + 1) for item in value)
                + "\n" + "  " * depth + "]")
    return json.dumps(value, allow_nan=False, separators=(", ", ": "))


def _json_settings(settings: dict) -> dict:
    """``run_figure1`` keyword arguments with tuples as lists (as JSON stores them)."""
    return {key: [list(unit) for unit in value] if key == "tracked_units" else value
            for key, value in settings.items()}


@dataclass(frozen=True)
class FullRunRecord:
    """The recorded FULL_RUN (``load_full_run``).

    Attributes:
        figure1:        {label: Run} the 50,000-step runs of ``full_run_plan`` (the runs have no
                        model; their train accuracy is the recorded one)
        regularization: {"no BN" | "BN" | "dropout": [Run per seed]} section 6's longer runs
        best_plain_lr:  the best rate of the plain network in the learning-rate sweep, as the
                        recording found it (the notebook checks its own sweep agrees)
        versions:       python, torch and numpy of the recording
        path:           the file read
    """

    figure1: dict
    regularization: dict
    best_plain_lr: float
    versions: dict
    path: Path


def _run_from_record(settings: dict, record: dict) -> Run:
    defaults = dict(batchnorm=False, bn_position="before", seed=0, dropout=0.0, train_size=None,
                    eval_size=None, tracked_units=LAST_LAYER_UNITS)
    arguments = {**defaults, **settings}
    normalized = _settings(**{name: arguments[name] for name in (
        "batchnorm", "steps", "lr", "init_std", "seed", "bn_position", "dropout", "train_size",
        "eval_size", "record_every", "tracked_units")})
    steps = np.array(record["steps"])
    units = tuple(tuple(unit) for unit in record["tracked_units"])
    history = History(
        steps=steps,
        test_accuracy=np.array(record["test_accuracy"], dtype=np.float64),
        train_loss=np.array([np.nan if v is None else v for v in record["train_loss"]]),
        percentiles=np.array(record["percentiles"], dtype=np.float64).reshape(
            len(steps), len(units), len(record["quantiles"])),
        tracked_units=units, quantiles=tuple(record["quantiles"]), diverged=record["diverged"],
        settings=dict(steps=normalized["steps"], batch_size=60, lr=normalized["lr"],
                      record_every=normalized["record_every"], seed=normalized["seed"]))
    return Run(history=history, settings=normalized, model=None,
               _train_accuracy=float(record["train_accuracy"]))


def load_full_run(path=None, verify: bool = True) -> FullRunRecord:
    """Read the recorded FULL_RUN (``data/bn_in_a_network_full_run.json``), after checking
    its sha256 against ``FULL_RUN_SHA256``.

    Raises:
        helpers.data.DataFileError: the file is missing or is not the recorded one.
    """
    from helpers.data import find_data_file, load_record

    path = find_data_file(FULL_RUN_FILENAME) if path is None else Path(path)
    record = load_record(FULL_RUN_FILENAME, FULL_RUN_SHA256, "python -m tools.record_full_run", path=path,
                         verify=verify, what="the recorded FULL_RUN of notebook 06", update="FULL_RUN_SHA256")
    figure1 = {label: _run_from_record(entry["settings"], entry["history"])
               for label, entry in record["figure1"].items()}
    regularization: dict = {}
    for entry in record["regularization"]:
        regularization.setdefault(entry["variant"], []).append(
            _run_from_record(entry["settings"], entry["history"]))
    return FullRunRecord(figure1=figure1, regularization=regularization,
                         best_plain_lr=float(record["best_plain_lr"]),
                         versions=dict(record["versions"]), path=path)


# ---------------------------------------------------------------------------------------------
# The panel's runs: every setting of the widget, trained once by a maintainer and shipped in data/
# ---------------------------------------------------------------------------------------------

#: Every run the panel can show (``panel_run_plan``), made by
#: ``python -m tools.record_panel_runs bn_in_a_network``.
PANEL_RUNS_FILENAME = "bn_in_a_network_panel_runs.json"
#: Its sha256; ``load_panel_runs`` refuses a file with any other.
PANEL_RUNS_SHA256 = "9e32b6e9ac7854934c6159ad511349cd5bf5045b8814fa5708beb43b56025dc3"
PANEL_RUNS_COMMAND = "python -m tools.record_panel_runs bn_in_a_network"


def panel_run_settings(batchnorm: bool, lr: float, init_std: float, bn_position: str = "before") -> dict:
    """Keyword arguments of ``run_figure1`` for one run of the panel (and of the notebook's
    sweeps): SWEEP_STEPS steps, seed 0, evaluated every SWEEP_RECORD_EVERY steps on the first
    SWEEP_EVAL_SIZE test images, no tracked units."""
    settings = dict(batchnorm=bool(batchnorm), steps=SWEEP_STEPS, lr=float(lr), init_std=float(init_std),
                    seed=0, record_every=SWEEP_RECORD_EVERY, eval_size=SWEEP_EVAL_SIZE, tracked_units=())
    if batchnorm:
        settings["bn_position"] = bn_position
    return settings


def _panel_run_key(batchnorm: bool, lr: float, init_std: float, bn_position: str = "before") -> str:
    name = f"BN {bn_position}" if batchnorm else "no BN"
    return f"{name}, lr {float(lr)!r}, init {float(init_std)!r}"


def panel_run_plan() -> dict:
    """{key: ``run_figure1`` keyword arguments} for every run the panel can show: the plain
    network at each learning rate and initial scale (6 x 5), the BN network at each of those
    before and after the sigmoid (6 x 5 x 2)."""
    plan = {}
    for lr in LEARNING_RATES:
        for std in INIT_STDS:
            plan[_panel_run_key(False, lr, std)] = panel_run_settings(False, lr, std)
            for position in ("before", "after"):
                plan[_panel_run_key(True, lr, std, position)] = panel_run_settings(True, lr, std, position)
    return plan


def record_panel_runs(path=None, jobs: int = 1) -> tuple[Path, str]:
    """Train every run of ``panel_run_plan`` and write them as JSON (maintainers only: a few
    minutes of CPU time; each run on one torch thread, so the result does not depend on ``jobs``).

    Returns:
        (path, sha256 of the file written)
    """
    from helpers.data import record_path, record_versions, run_each, write_record

    plan = panel_run_plan()
    results = run_each(_train_and_record, plan.values(), jobs)
    record = {
        "what": "notebook 06's panel: the plain and the BN network at every learning rate, initial "
                "scale and BN placement the panel offers, trained once and recorded",
        "command": PANEL_RUNS_COMMAND,
        "versions": record_versions(),
        "torch_threads": 1,
        "storage": "accuracies and losses as the shortest decimals of the float32 values training "
                   "produced (exact); train accuracy as a float64",
        "runs": {key: {"settings": _json_settings(settings), "history": result}
                 for (key, settings), result in zip(plan.items(), results)},
    }
    path = record_path(PANEL_RUNS_FILENAME) if path is None else Path(path)
    return path, write_record(path, record)


@lru_cache(maxsize=1)
def _panel_runs(path, verify: bool) -> dict:
    from helpers.data import load_record

    record = load_record(PANEL_RUNS_FILENAME, PANEL_RUNS_SHA256, PANEL_RUNS_COMMAND, path=path,
                         verify=verify)
    return {key: _run_from_record(entry["settings"], entry["history"])
            for key, entry in record["runs"].items()}


def load_panel_runs(path=None, verify: bool = True) -> dict:
    """The recorded runs of the panel (``data/bn_in_a_network_panel_runs.json``), read once per
    process after checking its sha256: {key: Run} (the runs have no model).

    Raises:
        helpers.data.DataFileError: the file is missing or is not the recorded one.
    """
    return _panel_runs(None if path is None else str(path), verify)


def recorded_panel_run(batchnorm: bool, lr: float, init_std: float, bn_position: str = "before"):
    """The recorded run of the panel for these settings, or None if the record has none.

    Raises:
        helpers.data.DataFileError: the record is missing or damaged.
    """
    return load_panel_runs().get(_panel_run_key(batchnorm, lr, init_std, bn_position))
