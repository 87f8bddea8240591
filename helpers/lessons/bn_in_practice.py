"""Notebook 08's computations: what practitioners meet with batch normalization, measured.

1. Fine-tuning (``pretrained_mlp``, ``faded``, ``fine_tune_head``, ``fine_tuning_experiment``):
   a BN network pretrained on MNIST, a shifted domain ("faded scans"), and fine-tuning its
   classifier on a few target images with the BN layers left in training mode, frozen, or
   recalibrated on the new domain and then frozen.
2. Residual networks (``ResidualMLP``, ``stream_variances``, ``residual_run``): the variance of
   the residual stream block by block at initialization, and training with and without a
   zero-initialized last gamma in every block.
3. Dropout before BN (``bn_mlp(dropout=...)``, ``variance_shift``): the variance a BN layer sees
   in eval mode against the running variance it learned with dropout on.
4. Batch Renormalization (``BatchRenorm1d``, the torch twin of ``helpers.renorm``;
   ``renorm_run``): BN, Batch Renorm and GroupNorm trained on tiny or skewed batches.
5. Half precision (``autocast_probe``): what torch's CPU autocast does with a BN layer.
6. Sequences (``padded_batch``): a small padded batch of variable-length sequences.

Runs are remembered in this process (``clear_cache()`` forgets them), so the notebook's cells
and its panels share them. Everything is seeded; torch's global random state is left as it
was; training runs on one torch thread.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.data import MNIST, load_mnist
from helpers.frozen import batchnorm_layers, freeze_batchnorm, recalibrate_batchnorm
from helpers.i18n import N_, _
from helpers.models import seeded
from helpers.training import SGD, one_torch_thread, show_progress

__all__ = [
    "NORMS",
    "RENORM_SETTINGS",
    "BatchRenorm1d",
    "ResidualMLP",
    "ResidualRun",
    "accuracy",
    "autocast_probe",
    "bn_mlp",
    "clear_cache",
    "domain_data",
    "fine_tune_head",
    "fine_tuning_experiment",
    "faded",
    "mnist_subset",
    "padded_batch",
    "pretrained_mlp",
    "random_batches",
    "renorm_run",
    "renorm_schedule",
    "residual_run",
    "skewed_batches",
    "stream_variances",
    "train",
    "variance_shift",
    "with_progress",
]

#: Training and test subsets of MNIST (flattened images in [0, 1]).
TRAIN_SIZE, TEST_SIZE = 12000, 2000
#: The normalizations ``bn_mlp`` knows.
NORMS = ("batch", "renorm", "group", "none")
HIDDEN = (128, 128)
GROUPS = 8  # GroupNorm in the MLP: 128 units in 8 groups of 16

_CACHE: dict = {}


def clear_cache() -> None:
    """Forget every remembered run (and the pretrained network)."""
    _CACHE.clear()


def _cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def _progress(total: int, description: str, progress):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=_(description), disable=not show_progress(progress), leave=False)


def with_progress(items, description: str, progress=None):
    """Iterate over the items under a progress bar (shown when someone is watching, see
    ``helpers.training.show_progress``): for the notebook's loops over training runs."""
    items = list(items)
    with _progress(len(items), description, progress) as bar:
        for item in items:
            yield item
            bar.update(1)


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def mnist_subset(train_size: int = TRAIN_SIZE, test_size: int = TEST_SIZE, seed: int = 0) -> MNIST:
    """A seeded random subset of the MNIST training images and the first ``test_size`` test images.

    Returns MNIST of tensors: x_train (train_size, 784) float32 in [0, 1], y_train (train_size,)
    int64, x_test (test_size, 784), y_test (test_size,). Loaded once per process; do not modify.
    """
    full = load_mnist()
    if not (1 <= train_size <= len(full.x_train) and 1 <= test_size <= len(full.x_test)):
        raise ValueError(f"train_size must be in 1..{len(full.x_train)} and test_size in "
                         f"1..{len(full.x_test)}, got {train_size} and {test_size}")
    chosen = np.random.default_rng(seed).permutation(len(full.x_train))[:train_size]

    def images(x):
        return torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0)

    def labels(y):
        return torch.from_numpy(y.astype(np.int64))

    return MNIST(images(full.x_train[chosen]), labels(full.y_train[chosen]),
                 images(full.x_test[:test_size]), labels(full.y_test[:test_size]))


def faded(x: torch.Tensor, seed: int, contrast: float = 0.5, background: float = 0.3,
          noise: float = 0.1) -> torch.Tensor:
    """The shifted domain of section 1, "faded scans": contrast * x + background + noise.

    Args:
        x:     (N, 784) images in [0, 1]
        seed:  seeds the pixel noise (N(0, noise^2), independent per pixel)

    Returns:
        (N, 784) float32 (not clipped: the shift is what matters, not the range)
    """
    generator = torch.Generator().manual_seed(seed)
    return contrast * x + background + noise * torch.randn(x.shape, generator=generator)


def random_batches(num_examples: int, batch_size: int, steps: int, seed: int = 0) -> np.ndarray:
    """(steps, batch_size) indices drawn independently at random (with replacement)."""
    if not 1 <= batch_size <= num_examples or steps < 1:
        raise ValueError(f"need 1 <= batch_size <= {num_examples} and steps >= 1, "
                         f"got {batch_size} and {steps}")
    return np.random.default_rng(seed).integers(num_examples, size=(steps, batch_size))


def skewed_batches(labels, batch_size: int, steps: int, classes_per_batch: int = 2,
                   seed: int = 0) -> np.ndarray:
    """(steps, batch_size) indices of batches that each hold only ``classes_per_batch`` classes.

    Every batch draws its classes at random (so that over many steps SGD sees every class) and
    batch_size / classes_per_batch examples of each: notebook 04's sorted stream, where each
    batch held one or two digits, made trainable. The batch statistics of such a batch describe
    two digits, not the population: the non-i.i.d. case of Ioffe (2017), §4.3.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if batch_size % classes_per_batch or not 1 <= classes_per_batch <= len(classes):
        raise ValueError(f"classes_per_batch ({classes_per_batch}) must divide batch_size "
                         f"({batch_size}) and be at most the number of classes ({len(classes)})")
    rng = np.random.default_rng(seed)
    members = {c: np.flatnonzero(labels == c) for c in classes}
    per_class = batch_size // classes_per_batch
    batches = np.empty((steps, batch_size), dtype=np.int64)
    for step in range(steps):
        chosen = rng.choice(classes, size=classes_per_batch, replace=False)
        batches[step] = np.concatenate([rng.choice(members[c], size=per_class) for c in chosen])
    return batches


# ----------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------


class BatchRenorm1d(nn.Module):
    """Batch Renormalization (Ioffe 2017) for (N, D) inputs: the torch twin of ``helpers.renorm``.

    Training: x_hat = (x - mu_B) / sigma_B * r + d with r = clip(sigma_B / sigma, 1/r_max,
    r_max) and d = clip((mu_B - mu) / sigma, -d_max, d_max) detached (no gradient flows
    through them), y = weight * x_hat + bias; then running_mean += momentum (mu_B - mu) and
    running_std += momentum (sigma_B - sigma). sigma_B = sqrt(biased batch variance + eps).
    Eval: y = weight * (x - running_mean) / running_std + bias.

    ``r_max`` and ``d_max`` are plain attributes, to be raised during training (start at 1 and
    0: plain BN; see ``renorm_schedule``). ``momentum`` defaults to 0.01: r and d are measured
    against the running statistics, which must be steadier than any one small batch.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.01,
                 r_max: float = 1.0, d_max: float = 0.0):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.r_max, self.d_max = float(r_max), float(d_max)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(_("BatchRenorm1d({features}) expects (N, {features}), got {shape}").format(
                features=self.num_features, shape=tuple(x.shape)))
        if not self.training:
            return (x - self.running_mean) / self.running_std * self.weight + self.bias
        if len(x) < 2:
            raise ValueError(_("Batch Renormalization in training needs at least 2 examples per batch"))
        mean = x.mean(dim=0)
        std = torch.sqrt(x.var(dim=0, unbiased=False) + self.eps)
        with torch.no_grad():
            r = (std / self.running_std).clamp(1.0 / self.r_max, self.r_max)
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.d_max, self.d_max)
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_std += self.momentum * (std - self.running_std)
        x_hat = (x - mean) / std * r + d
        return x_hat * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.num_features}, r_max={self.r_max:g}, d_max={self.d_max:g}, momentum={self.momentum:g}"


def renorm_schedule(step: int, steps: int, r_max: float = 3.0, d_max: float = 5.0,
                    warmup: float = 0.1, ramp: float = 0.4):
    """(r_max, d_max) at ``step`` of ``steps``: plain BN (1, 0) for the first ``warmup`` fraction
    of training, then linearly up to (r_max, d_max) over the next ``ramp`` fraction, as Ioffe
    (2017, §4) relaxes them after 5,000 steps (our runs are a few hundred steps long)."""
    t = min(max((step / steps - warmup) / ramp, 0.0), 1.0)
    return 1.0 + (r_max - 1.0) * t, d_max * t


def _norm_layer(norm: str, units: int, momentum: float) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm1d(units, momentum=momentum)
    if norm == "renorm":
        return BatchRenorm1d(units, momentum=momentum)
    if norm == "group":
        return nn.GroupNorm(GROUPS, units)
    if norm == "none":
        return nn.Identity()
    raise ValueError(_("norm must be one of {NORMS}, got {norm!r}").format(NORMS=NORMS, norm=norm))


def bn_mlp(norm: str = "batch", hidden=HIDDEN, dropout: float = 0.0, dropout_at: str = "before_bn",
           momentum: float = 0.1, seed: int = 0) -> nn.Sequential:
    """784 -> [Linear (no bias) -> norm -> ReLU] per hidden layer -> Linear -> 10 logits.

    Args:
        norm:       "batch" (BatchNorm1d), "renorm" (BatchRenorm1d), "group" (GroupNorm, 8
                    groups), "none"
        hidden:     units per hidden layer
        dropout:    p of nn.Dropout (0: none)
        dropout_at: "before_bn": after every ReLU, so each later BN sees dropped inputs (and so
                    does the classifier); "after_last_bn": once, before the classifier only
        momentum:   the norm's momentum (BatchNorm1d and BatchRenorm1d)
        seed:       seeds the initial weights (torch's default initialization)

    Shapes: (N, 784) -> (N, 10). The modules are in order: model[-1] is the classifier.
    """
    if dropout_at not in ("before_bn", "after_last_bn"):
        raise ValueError(_("dropout_at must be 'before_bn' or 'after_last_bn', got {dropout_at!r}").format(
            dropout_at=dropout_at))
    if not 0 <= dropout < 1:
        raise ValueError(_("dropout must be in [0, 1), got {dropout!r}").format(dropout=dropout))
    layers, fan_in = [], 28 * 28
    with seeded(seed):
        for units in hidden:
            layers += [nn.Linear(fan_in, units, bias=norm == "none"), _norm_layer(norm, units, momentum),
                       nn.ReLU()]
            if dropout and dropout_at == "before_bn":
                layers.append(nn.Dropout(dropout))
            fan_in = units
        if dropout and dropout_at == "after_last_bn":
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(fan_in, 10))
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------


def train(model: nn.Module, x, y, batches, lr: float, momentum: float = 0.9,
          before_step=None, seed: int = 0, progress=False, description: str = N_("training")) -> np.ndarray:
    """Plain mini-batch SGD (helpers.training.SGD) with cross-entropy, one batch of indices per step.

    ``model.train()`` is called once at the start; ``before_step(model, step)`` (if given) runs
    before every step, after that, to change the model (freeze its BN layers, set Batch
    Renorm's limits...). Only parameters with ``requires_grad`` are updated.

    Args:
        batches: (T, B) indices into x and y, one row per step
        seed:    seeds dropout (torch's global state is restored afterwards)

    Returns:
        (T,) the mini-batch losses (training stops at a non-finite loss: the rest are NaN)
    """
    batches = np.asarray(batches)
    optimizer = SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=momentum)
    losses = np.full(len(batches), np.nan)
    model.train()
    with one_torch_thread(), seeded(seed), _progress(len(batches), description, progress) as bar:
        for step, batch in enumerate(batches):
            if before_step is not None:
                before_step(model, step)
            index = torch.from_numpy(batch)
            loss = F.cross_entropy(model(x[index]), y[index])
            if not torch.isfinite(loss):
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[step] = loss.item()
            bar.update(1)
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, x, y) -> float:
    """Fraction of correct predictions in eval mode (the model's modes are restored)."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with one_torch_thread():
            return (model(x).argmax(dim=1) == y).float().mean().item()
    finally:
        for module, training in modes.items():
            module.training = training


# ----------------------------------------------------------------------------------------
# 1. Fine-tuning
# ----------------------------------------------------------------------------------------

#: Pretraining uses the first PRETRAIN["images"] images of the subset; fine-tuning and recalibration
#: draw from the others, so that the network has never seen them.
PRETRAIN = dict(images=6000, steps=600, batch_size=64, lr=0.05, momentum=0.9)
FINE_TUNE = dict(examples=256, steps=300, lr=0.05, unlabeled=2000)
BN_MODES = ("train", "frozen", "recalibrated")


def pretrained_mlp(seed: int = 0) -> nn.Sequential:
    """``bn_mlp("batch")`` trained on the first 6,000 images of the MNIST subset (PRETRAIN
    settings); a fresh copy each call (trained once per process), in eval mode."""
    def make():
        data = mnist_subset()
        model = bn_mlp("batch", seed=seed)
        batches = random_batches(PRETRAIN["images"], PRETRAIN["batch_size"], PRETRAIN["steps"], seed)
        train(model, data.x_train, data.y_train, batches, PRETRAIN["lr"], PRETRAIN["momentum"],
              seed=seed, description=N_("pretraining"))
        return model.eval()

    return copy.deepcopy(_cached(("pretrained", seed), make))


def fine_tune_head(model: nn.Module, x, y, batch_size: int, bn: str = "frozen", steps: int = 300,
                   lr: float = 0.05, seed: int = 0) -> nn.Module:
    """Fine-tune only the classifier (``model[-1]``) of a pretrained ``bn_mlp``; the other weights
    are frozen with ``requires_grad_(False)``. Changes ``model`` in place and returns it.

    Args:
        bn: what the BN layers do while the classifier trains:
            "train"  - nothing special: ``model.train()`` puts them in training mode (batch
                       statistics, running statistics updated) although their weights are frozen;
            "frozen" - ``freeze_batchnorm`` after ``model.train()``: eval mode, the statistics
                       they came with.
            (For "recalibrated", call ``recalibrate_batchnorm`` first, then use "frozen".)
        batch_size, steps, lr, seed: plain SGD (no momentum) on random batches of x
    """
    if bn not in ("train", "frozen"):
        raise ValueError(_("bn must be 'train' or 'frozen' (recalibrate first for 'recalibrated'), "
                         "got {bn!r}").format(bn=bn))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in model[-1].parameters():
        parameter.requires_grad_(True)
    before_step = (lambda m, step: freeze_batchnorm(m)) if bn == "frozen" else None
    train(model, x, y, random_batches(len(x), batch_size, steps, seed), lr, momentum=0.0,
          before_step=before_step, seed=seed)
    return model


def _fine_tune_once(domain: str, bn: str, batch_size: int, seed: int) -> dict:
    with one_torch_thread():
        return _fine_tune_on_one_thread(domain, bn, batch_size, seed)


def domain_data(domain: str, seed: int = 0) -> dict:
    """The images of section 1's fine-tuning for one domain ("clean" or "faded", remembered).

    Returns dict: x, y (256 labelled training images of the domain, chosen by ``seed``),
    unlabeled (2,000 other training images of the domain, for recalibration), x_test, y_test
    (the 2,000 test images of the domain). None of them was used in pretraining.
    """
    if domain not in ("clean", "faded"):
        raise ValueError(_("domain must be 'clean' or 'faded', got {domain!r}").format(domain=domain))

    def make():
        data = mnist_subset()
        start = 8000 + 1000 * seed  # labelled images, none seen in pretraining or recalibration
        x, y = data.x_train[start:start + FINE_TUNE["examples"]], data.y_train[start:start + FINE_TUNE["examples"]]
        unlabeled = data.x_train[6000:6000 + FINE_TUNE["unlabeled"]]
        x_test = data.x_test
        if domain == "faded":
            x, unlabeled, x_test = faded(x, 3 + seed), faded(unlabeled, 2), faded(x_test, 1)
        return dict(x=x, y=y, unlabeled=unlabeled, x_test=x_test, y_test=data.y_test)

    return _cached(("domain", domain, seed), make)


def _fine_tune_on_one_thread(domain: str, bn: str, batch_size: int, seed: int) -> dict:
    images = domain_data(domain, seed)
    x, y, unlabeled, x_test = images["x"], images["y"], images["unlabeled"], images["x_test"]
    model = pretrained_mlp()
    before = [layer.running_var.clone() for layer in batchnorm_layers(model)]
    if bn == "recalibrated":
        recalibrate_batchnorm(model, unlabeled.split(100))
        before = [layer.running_var.clone() for layer in batchnorm_layers(model)]
    fine_tune_head(model, x, y, batch_size, "train" if bn == "train" else "frozen",
                   FINE_TUNE["steps"], FINE_TUNE["lr"], seed)
    drift = float(np.median(np.concatenate([
        ((layer.running_var - old).abs() / old).numpy() for layer, old in zip(batchnorm_layers(model), before)])))
    return dict(accuracy=accuracy(model, x_test, images["y_test"]), drift=drift)


def fine_tuning_experiment(batch_sizes=(2, 32), seeds=(0,), progress=None) -> dict:
    """Fine-tune the pretrained network's classifier on 256 labelled images of each domain
    ("clean" MNIST, "faded" scans) with each BN mode ("train", "frozen", "recalibrated" on
    2,000 unlabeled target images then frozen) and batch size.

    Returns {(domain, bn, batch_size): {"accuracy": [per seed], "drift": [per seed]}}: test
    accuracy on the domain's 2,000 test images, and the median relative change of the BN layers'
    running variances during fine-tuning (0 when frozen).
    """
    settings = [(domain, bn, size) for domain in ("clean", "faded") for bn in BN_MODES
                for size in batch_sizes]
    results = {}
    with _progress(len(settings) * len(seeds), N_("fine-tuning"), progress) as bar:
        for setting in settings:
            runs = [_cached(("fine-tune", *setting, seed), lambda s=setting, k=seed: _fine_tune_once(*s, k))
                    for seed in seeds]
            results[setting] = {"accuracy": [r["accuracy"] for r in runs], "drift": [r["drift"] for r in runs]}
            bar.update(len(seeds))
    return results


# ----------------------------------------------------------------------------------------
# 2. Residual networks
# ----------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """h -> h + branch(h), branch = Linear -> [BN] -> ReLU -> Linear -> [BN] (He-initialized
    Linears; without BN they have biases). With ``zero_init``, the last BN's gamma starts at 0
    (torchvision's ``zero_init_residual``): the block starts as the identity."""

    def __init__(self, width: int, batchnorm: bool, zero_init: bool, gain: float = 1.0):
        super().__init__()
        if zero_init and not batchnorm:
            raise ValueError(_("zero_init sets the last BN's gamma to 0: it needs batchnorm=True"))
        self.linear1 = nn.Linear(width, width, bias=not batchnorm)
        self.linear2 = nn.Linear(width, width, bias=not batchnorm)
        self.norm1 = nn.BatchNorm1d(width) if batchnorm else nn.Identity()
        self.norm2 = nn.BatchNorm1d(width) if batchnorm else nn.Identity()
        for linear in (self.linear1, self.linear2):
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            linear.weight.data *= gain
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        if zero_init:
            nn.init.zeros_(self.norm2.weight)

    def forward(self, h):
        return h + self.norm2(self.linear2(torch.relu(self.norm1(self.linear1(h)))))


class ResidualMLP(nn.Module):
    """784 -> Linear stem (width) -> ``depth`` residual blocks -> ReLU -> Linear -> 10.

    Args:
        depth:     number of residual blocks
        width:     units of the residual stream
        batchnorm: BN inside every branch (after each of its two Linears)
        zero_init: the last BN of every branch starts with gamma = 0
        gain:      multiplies the He-initialized branch weights (1: He)
        seed:      seeds the initial weights

    ``forward(x, record=None)``: with a list as ``record``, appends the residual stream after the
    stem and after every block.
    """

    def __init__(self, depth: int, width: int = 64, batchnorm: bool = True, zero_init: bool = False,
                 gain: float = 1.0, seed: int = 0):
        super().__init__()
        if int(depth) != depth or depth < 0:
            raise ValueError(_("depth must be a non-negative integer, got {depth!r}").format(depth=depth))
        with seeded(seed):
            self.stem = nn.Linear(28 * 28, width)
            self.blocks = nn.ModuleList(ResidualBlock(width, batchnorm, zero_init, gain)
                                        for _block in range(depth))
            self.head = nn.Linear(width, 10)

    def forward(self, x, record=None):
        h = self.stem(x)
        if record is not None:
            record.append(h)
        for block in self.blocks:
            h = block(h)
            if record is not None:
                record.append(h)
        return self.head(torch.relu(h))


@torch.no_grad()
def stream_variances(model: ResidualMLP, x) -> np.ndarray:
    """The variance of the residual stream (over the batch and all units) after the stem and
    after each block, for one training-mode forward pass of a copy of ``model`` on x (the model
    itself is left untouched).

    Returns:
        (depth + 1,) float64 (inf where the stream overflowed float32)
    """
    probe = copy.deepcopy(model).train()
    streams = []
    with one_torch_thread(), np.errstate(over="ignore", invalid="ignore"):
        probe(x, record=streams)
        return np.array([h.double().var(unbiased=False).item() for h in streams])


@dataclass
class ResidualRun:
    """A training run of a ``ResidualMLP``: its settings, the loss of every step, test accuracy."""

    depth: int
    zero_init: bool
    lr: float
    seed: int
    losses: np.ndarray
    test_accuracy: float
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)

    def early_loss(self, steps: int = 50) -> float:
        """Mean training loss over the first ``steps`` steps."""
        return float(np.mean(self.losses[:steps]))

    def smoothed(self, window: int = 20) -> np.ndarray:
        """The loss averaged over the last ``window`` steps (shorter at the start)."""
        cumulative = np.cumsum(np.insert(self.losses, 0, 0.0))
        steps = np.arange(1, len(self.losses) + 1)
        start = np.maximum(steps - window, 0)
        return (cumulative[steps] - cumulative[start]) / (steps - start)

    def steps_to(self, loss: float, window: int = 20) -> float:
        """The first step at which the smoothed loss is below ``loss`` (inf if never)."""
        below = np.flatnonzero(self.smoothed(window) < loss)
        return float(below[0] + 1) if len(below) else math.inf


RESIDUAL = dict(width=64, steps=200, batch_size=64, momentum=0.9)


def residual_run(depth: int = 16, zero_init: bool = False, lr: float = 0.1, seed: int = 0,
                 steps: int = RESIDUAL["steps"]) -> ResidualRun:
    """Train a ``ResidualMLP`` with BN (width 64) on the MNIST subset: SGD with momentum 0.9,
    batches of 64 (remembered per setting)."""
    def make():
        data = mnist_subset()
        model = ResidualMLP(depth, RESIDUAL["width"], batchnorm=True, zero_init=zero_init, seed=seed)
        started = time.perf_counter()
        losses = train(model, data.x_train, data.y_train,
                       random_batches(len(data.x_train), RESIDUAL["batch_size"], steps, seed),
                       lr, RESIDUAL["momentum"], seed=seed)
        return ResidualRun(depth, zero_init, lr, seed, losses, accuracy(model, data.x_test, data.y_test),
                           time.perf_counter() - started, dict(RESIDUAL, steps=steps))

    return _cached(("residual", depth, zero_init, lr, seed, steps), make)


# ----------------------------------------------------------------------------------------
# 3. Dropout before BN: the variance shift
# ----------------------------------------------------------------------------------------


@torch.no_grad()
def variance_shift(model: nn.Sequential, x) -> np.ndarray:
    """For every BN layer of a ``bn_mlp``: the median over its units of

        (variance of the layer's input in eval mode, over x) / running_var,

    the variance of the normalized values x_hat it produces at inference. 1 means the running
    statistics describe what the layer sees at inference; with dropout before it, less than 1
    (Li et al. 2019). The model is run in eval mode; its modes are restored.

    Returns:
        (number of BN layers,) float64
    """
    modes = {module: module.training for module in model.modules()}
    model.eval()
    ratios, h = [], x
    try:
        for module in model:
            if isinstance(module, nn.BatchNorm1d):
                ratios.append((h.var(dim=0, unbiased=True) / module.running_var).median().item())
            h = module(h)
    finally:
        for module, training in modes.items():
            module.training = training
    return np.array(ratios)


# ----------------------------------------------------------------------------------------
# 4. Batch Renormalization on tiny and skewed batches
# ----------------------------------------------------------------------------------------

#: The training settings of section 4: notebook 04's tiny batches and sorted (skewed) batches.
#: The descriptions are translated when the module is imported (the notebook prints them; its
#: setup cell sets the language first).
RENORM_SETTINGS = {
    "tiny": dict(batch_size=4, steps=800, lr=0.02, classes_per_batch=None,
                 description=_("batches of 4 random images")),
    "skewed": dict(batch_size=32, steps=400, lr=0.02, classes_per_batch=2,
                   description=_("batches of 32 images of only 2 digits")),
    "iid": dict(batch_size=32, steps=400, lr=0.02, classes_per_batch=None,
                description=_("batches of 32 random images")),
}


def renorm_run(norm: str, setting: str, seed: int = 0) -> float:
    """Train ``bn_mlp(norm, momentum=0.01)`` (SGD, momentum 0.9) in one of RENORM_SETTINGS and
    return its test accuracy in eval mode (remembered). Batch Renorm follows ``renorm_schedule``."""
    if setting not in RENORM_SETTINGS:
        raise ValueError(_("setting must be one of {settings}, got {setting!r}").format(
            settings=tuple(RENORM_SETTINGS), setting=setting))

    def make():
        s = RENORM_SETTINGS[setting]
        data = mnist_subset()
        if s["classes_per_batch"]:
            batches = skewed_batches(data.y_train.numpy(), s["batch_size"], s["steps"],
                                     s["classes_per_batch"], seed)
        else:
            batches = random_batches(len(data.x_train), s["batch_size"], s["steps"], seed)
        model = bn_mlp(norm, momentum=0.01, seed=seed)
        renorms = [m for m in model.modules() if isinstance(m, BatchRenorm1d)]

        def schedule(m, step):
            for layer in renorms:
                layer.r_max, layer.d_max = renorm_schedule(step, s["steps"])

        train(model, data.x_train, data.y_train, batches, s["lr"], 0.9, before_step=schedule, seed=seed)
        return accuracy(model, data.x_test, data.y_test)

    return _cached(("renorm", norm, setting, seed), make)


# ----------------------------------------------------------------------------------------
# 5. Half precision: what autocast does with BN
# ----------------------------------------------------------------------------------------


@torch.no_grad()
def autocast_probe(dtype=torch.bfloat16, mean: float = 300.0, batch_size: int = 256, seed: int = 0,
                   device: str = "cpu") -> dict:
    """A Linear layer and a BatchNorm1d under ``torch.autocast(device, dtype)``, fed activations
    near ``mean``: which dtypes come out, and how exact BN's statistics are.

    The Linear (identity weights) produces ``dtype`` under autocast; BN receives that tensor.
    Returns dict: linear_out, bn_out, running_var and weight dtypes (as strings),
    bn_out_from_float32 (the output dtype of a BN layer fed a float32 tensor under autocast), and
    var_error: max relative error of BN's running variance (momentum 1: this batch's unbiased
    variance) against the exact float64 variance of the very values BN received; and
    naive_error: the same for E[x^2] - E[x]^2 computed in ``dtype`` by torch (inf or nan when
    it overflows). ``device="cuda"`` runs the same probe on a GPU.
    """
    generator = torch.Generator().manual_seed(seed)
    x = (mean + torch.randn(batch_size, 4, generator=generator)).to(device)
    linear = nn.Linear(4, 4, bias=False).to(device)
    linear.weight.copy_(torch.eye(4))
    bn = nn.BatchNorm1d(4, momentum=1.0).to(device).train()
    other = nn.BatchNorm1d(4).to(device).train()
    with one_torch_thread(), torch.autocast(device, dtype=dtype):
        z = linear(x)
        y = bn(z)
        y_from_float32 = other(x)  # BN on a float32 tensor under autocast
    exact = z.double().var(dim=0, unbiased=True)
    low = z.to(dtype)
    naive = ((low * low).mean(dim=0) - low.mean(dim=0) ** 2).double() * batch_size / (batch_size - 1)

    def name(t):
        return str(t.dtype).replace("torch.", "")

    return dict(linear_out=name(z), bn_out=name(y), bn_out_from_float32=name(y_from_float32),
                running_var=name(bn.running_var), weight=name(bn.weight),
                var_error=float(((bn.running_var.double() - exact).abs() / exact).max()),
                naive_error=float(((naive - exact).abs() / exact).max()))


# ----------------------------------------------------------------------------------------
# 6. Sequences: a padded batch
# ----------------------------------------------------------------------------------------


def padded_batch(lengths=(6, 2, 4, 3), features: int = 3, seed: int = 0, pad_value: float = 0.0,
                 mean=(2.0, -1.0, 0.5), std=(1.0, 2.0, 0.5)):
    """A batch of variable-length sequences padded to the longest, as a sequence model gets it.

    Token features are drawn from N(mean, std^2) per feature; positions beyond a sequence's
    length hold ``pad_value``.

    Returns:
        (x, mask): x (N, T, D) float64 with T = max(lengths), mask (N, T) bool (True = real token)
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or np.any(lengths < 1):
        raise ValueError(f"lengths must be positive integers, got {lengths!r}")
    mean, std = np.asarray(mean, float)[:features], np.asarray(std, float)[:features]
    if len(mean) != features or len(std) != features:
        raise ValueError(f"mean and std need {features} values (one per feature)")
    rng = np.random.default_rng(seed)
    steps = int(lengths.max())
    x = mean + std * rng.standard_normal((len(lengths), steps, features))
    mask = np.arange(steps)[None, :] < lengths[:, None]
    x[~mask] = pad_value
    return x, mask
