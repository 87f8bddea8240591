"""A small, seeded training loop that records what the notebooks plot.

``train_classifier`` runs plain mini-batch SGD on (x, y) tensors and, every ``record_every``
steps, evaluates the model on a fixed evaluation set: test accuracy, and (for models that
return their pre-activations, like ``Figure1MLP``) chosen percentiles of chosen units'
inputs to the nonlinearity. Everything is seeded; torch's global random state is restored
afterwards.
"""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from helpers.i18n import _
from helpers.models import seeded

__all__ = ["SGD", "History", "evaluate_accuracy", "one_torch_thread", "show_progress",
           "train_classifier"]

#: Set this environment variable to "0" to silence progress bars everywhere.
PROGRESS_ENV = "BATCHNORM_COURSE_PROGRESS"


@contextmanager
def one_torch_thread():
    """Run a block on one torch thread, then restore torch's setting.

    The course's small networks gain almost nothing from a second thread, and on a busy
    machine (Colab, a shared server) threads that wait for each other make them several
    times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SGD:
    """Mini-batch SGD with momentum and weight decay: the update ``torch.optim.SGD`` makes
    (no dampening, no Nesterov), step for step and bit for bit.

        g = grad + weight_decay * p
        v = g on the first step, then v = momentum * v + g      (only if momentum > 0)
        p = p - lr * v

    Written out because creating a ``torch.optim`` optimizer imports torch's compiler stack,
    about 2 s of every fresh notebook kernel; this is all the course needs.
    """

    def __init__(self, parameters, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        if lr <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(_("need lr > 0, momentum >= 0 and weight_decay >= 0; got lr={lr}, "
                               "momentum={momentum}, weight_decay={weight_decay}").format(lr=lr, momentum=momentum, weight_decay=weight_decay))
        self.parameters = [p for p in parameters if p.requires_grad]
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocities = [None] * len(self.parameters)

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.parameters):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            if self.momentum:
                if self.velocities[i] is None:
                    self.velocities[i] = g.clone()
                else:
                    self.velocities[i].mul_(self.momentum).add_(g)
                g = self.velocities[i]
            p.add_(g, alpha=-self.lr)


@dataclass
class History:
    """What a training run recorded.

    Attributes:
        steps:          (R,) the step after which each record was taken (0 = before training)
        test_accuracy:  (R,) accuracy on the evaluation set
        train_loss:     (R,) mean training loss over the steps since the previous record
                        (NaN for the record at step 0)
        percentiles:    (R, U, Q) the Q percentiles of each of the U tracked units' inputs
                        to the nonlinearity, over the evaluation set (empty if none tracked)
        tracked_units:  the U (layer, unit) pairs; layer indexes the hidden layers (-1 = last)
        quantiles:      the Q percentiles, e.g. (15, 50, 85)
        diverged:       True if the loss became NaN, infinite or huge (training stopped there)
        seconds:        wall time of the run
        settings:       the arguments of the run, for the record
    """

    steps: np.ndarray
    test_accuracy: np.ndarray
    train_loss: np.ndarray
    percentiles: np.ndarray
    tracked_units: tuple
    quantiles: tuple
    diverged: bool = False
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)

    def accuracy_at(self, step: int) -> float:
        """Test accuracy recorded at ``step`` (NaN if the run diverged before it)."""
        matches = np.flatnonzero(self.steps == step)
        return float(self.test_accuracy[matches[0]]) if len(matches) else math.nan


def show_progress(progress=None) -> bool:
    """Whether to draw a progress bar: ``progress`` if given, else only when someone is
    watching (a Jupyter kernel or a terminal), and never if $BATCHNORM_COURSE_PROGRESS is "0"."""
    if progress is not None:
        return bool(progress)
    if os.environ.get(PROGRESS_ENV) == "0":
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        return True
    return sys.stderr.isatty()


def _progress_bar(total: int, description: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, disable=not enabled, leave=False)


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 5000) -> float:
    """Fraction of correctly classified examples, in eval mode (the mode is restored)."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(x), chunk):
        correct += (model(x[start:start + chunk]).argmax(dim=1) == y[start:start + chunk]).sum().item()
    model.train(was_training)
    return correct / len(x)


@torch.no_grad()
def _evaluate(model, x_eval, y_eval, tracked_units, quantiles):
    """Accuracy and the (U, Q) percentiles of the tracked units, in eval mode."""
    was_training = model.training
    model.eval()
    if tracked_units:
        logits, preactivations = model(x_eval, return_preactivations=True)
        values = torch.stack([preactivations[layer][:, unit] for layer, unit in tracked_units])
        q = torch.tensor(quantiles, dtype=values.dtype) / 100
        percentiles = torch.quantile(values, q, dim=1).T.numpy()  # (U, Q)
    else:
        logits = model(x_eval)
        percentiles = np.zeros((0, len(quantiles)))
    accuracy = (logits.argmax(dim=1) == y_eval).float().mean().item()
    model.train(was_training)
    return accuracy, percentiles


def train_classifier(model: nn.Module, x_train, y_train, x_eval, y_eval, *, steps: int,
                     batch_size: int = 60, lr: float = 0.1, momentum: float = 0.0,
                     weight_decay: float = 0.0, record_every: int = 100,
                     tracked_units=(), quantiles=(15, 50, 85), seed: int = 0,
                     max_loss: float = 1e3, progress=None,
                     description: str = "training") -> History:
    """Train ``model`` with mini-batch SGD and cross-entropy; record every ``record_every`` steps.

    Args:
        model:          a torch module mapping x to (N, 10) logits; to track units it must accept
                        ``return_preactivations=True`` (as ``Figure1MLP`` does)
        x_train, y_train: tensors (n, ...) float32 and (n,) int64
        x_eval, y_eval:   the fixed evaluation set (e.g. the 10,000 test images)
        steps:          number of SGD steps (mini-batches)
        batch_size:     examples per mini-batch (the paper's Figure 1 uses 60)
        lr, momentum, weight_decay: SGD settings
        record_every:   evaluate after every this many steps (and once before training)
        tracked_units:  (layer, unit) pairs whose pre-activation percentiles are recorded
        quantiles:      which percentiles
        seed:           seeds the batch order (and any dropout); the global state is restored
        max_loss:       a mini-batch loss above this counts as divergence (chance level for
                        10 classes is ln 10 = 2.3; sigmoid networks blow up without a NaN)
        progress:       True / False, or None for automatic (see ``show_progress``)

    Returns:
        History. A run whose loss becomes NaN, infinite or larger than ``max_loss`` stops
        there with ``diverged=True``.
    """
    if steps < 0 or batch_size < 1 or record_every < 1:
        raise ValueError(_("steps must be >= 0, batch_size and record_every >= 1"))
    if batch_size > len(x_train):
        raise ValueError(_("batch_size ({batch_size}) is larger than the training set "
                           "({len_x_train})").format(batch_size=batch_size, len_x_train=len(x_train)))
    tracked_units = tuple(tuple(pair) for pair in tracked_units)
    settings = dict(steps=steps, batch_size=batch_size, lr=lr, momentum=momentum,
                    weight_decay=weight_decay, record_every=record_every, seed=seed,
                    max_loss=max_loss)
    optimizer = SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)

    records_steps, records_acc, records_loss, records_pct = [], [], [], []

    def record(step, mean_loss):
        accuracy, percentiles = _evaluate(model, x_eval, y_eval, tracked_units, quantiles)
        records_steps.append(step)
        records_acc.append(accuracy)
        records_loss.append(mean_loss)
        records_pct.append(percentiles)

    start_time = time.perf_counter()
    diverged = False
    model.train()
    with seeded(seed), _progress_bar(steps, description, show_progress(progress)) as bar:
        record(0, math.nan)
        order = torch.randperm(len(x_train), generator=generator)
        position, loss_sum, loss_count = 0, 0.0, 0
        for step in range(1, steps + 1):
            if position + batch_size > len(order):  # a new epoch: reshuffle
                order = torch.randperm(len(x_train), generator=generator)
                position = 0
            batch = order[position:position + batch_size]
            position += batch_size

            loss = loss_fn(model(x_train[batch]), y_train[batch])
            if not torch.isfinite(loss) or loss.item() > max_loss:
                diverged = True
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
            loss_count += 1

            if step % record_every == 0 or step == steps:
                record(step, loss_sum / loss_count)
                loss_sum, loss_count = 0.0, 0
            bar.update(1)

    quantile_count = len(quantiles)
    return History(
        steps=np.array(records_steps),
        test_accuracy=np.array(records_acc),
        train_loss=np.array(records_loss),
        percentiles=np.array(records_pct).reshape(len(records_steps), len(tracked_units), quantile_count),
        tracked_units=tracked_units,
        quantiles=tuple(quantiles),
        diverged=diverged,
        seconds=time.perf_counter() - start_time,
        settings=settings,
    )
