"""Notebook 07's experiments: three explanations of why batch normalization helps, each measured.

1. Internal covariate shift (Santurkar et al. 2018, §2.1): ``NoisyBatchNorm1d`` adds a random
   per-unit scale and shift, drawn afresh at every training step, after batch normalization, so
   the distributions the next layer sees shift *more* than without BN. ``train_mlp`` trains the
   paper's Figure 1 network without BN, with BN and with noisy BN, and records, at every step,
   percentiles of one unit's input to its sigmoid over a fixed probe set of test images.
2. Smoothness (Santurkar et al. 2018, §3): ``probe_along_gradient`` walks from a point along
   the negative gradient by several step sizes and records the loss and how much the gradient
   changed; ``landscape_probe`` does this at the checkpoints of a ``train_mlp`` run (for a fair
   comparison, a ReLU MLP that trains with and without BN: ``train_mlp(activation="relu")``).
3. Batch size (Wu & He 2018): ``GhostBatchNorm`` computes batch statistics over groups of
   ``ghost_batch`` examples inside a larger SGD mini-batch, so the number of examples behind
   each statistic changes while the optimization (steps, examples, learning rate) stays fixed.
   ``batch_size_run`` trains the small CNN or the MLP with BN, GroupNorm or LayerNorm.

Every run is remembered in this process: asking again for the same settings returns the same
object at once, so the notebook's runs feed its widgets. ``clear_cache()`` forgets them.
Everything is seeded; torch's global random state is left as it was. Training runs on one
CPU thread (restored afterwards): these models are far too small to gain from a second one.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.data import MNIST, load_mnist
from helpers.i18n import N_, _
from helpers.models import Figure1MLP, SmallCNN, seeded
from helpers.training import SGD, one_torch_thread, show_progress

__all__ = [
    "BATCH_SIZES",
    "MLP_LR",
    "NOISE",
    "RELU_LR",
    "GhostBatchNorm",
    "LandscapeProbe",
    "MLPRun",
    "NoisyBatchNorm1d",
    "Probe",
    "ReluMLP",
    "SizeRun",
    "batch_size_run",
    "batch_size_sweep",
    "build_cnn",
    "build_mlp",
    "clear_cache",
    "group_statistics",
    "landscape_probe",
    "looking_only",
    "mnist_subset",
    "model_loss_and_gradient",
    "noise_sweep",
    "normalizing_means",
    "probe_along_gradient",
    "remembered_size_runs",
    "train_mode_accuracy",
    "train_mlp",
    "load_panel_runs",
    "panel_run_plan",
    "record_panel_runs",
]

#: Training and test subsets (test accuracy on 1,000 images has a standard error near 1 %).
TRAIN_SIZE, TEST_SIZE = 8000, 1000
#: The MLP experiments (1 and 2): the paper's mini-batch of 60, plain SGD at this learning rate.
MLP_LR, MLP_BATCH, MLP_STEPS = 0.5, 60, 300
#: Experiment 2 uses a ReLU MLP (4 x 100, He initialization), which trains without BN too.
RELU_LR, RELU_DEPTH = 0.1, 4
#: Default strength of the noise injected after BN (see NoisyBatchNorm1d).
NOISE = 1.0
#: The unit whose input to the sigmoid is tracked: (hidden layer, unit); -1 is the last layer.
TRACKED_UNIT = (-1, 0)
TRACKED_QUANTILES = (15, 50, 85)
#: The fixed test images on which the tracked unit's distribution is measured at every step.
PROBE_IMAGES = 128
#: Experiment 3: every run takes SIZE_STEPS SGD steps of SGD_BATCH examples; BN's statistics
#: come from groups of ghost_batch of them ("images per worker" in Wu & He's Figure 1).
SGD_BATCH = 32
BATCH_SIZES = (1, 2, 4, 8, 16, 32)
SIZE_SETTINGS = {  # learning rate, momentum, steps per model
    "cnn": dict(lr=0.05, momentum=0.9, steps=200),
    "mlp": dict(lr=MLP_LR, momentum=0.0, steps=300),
}
MLP_NORMS = ("none", "batch", "noisy", "group", "layer")
SIZE_NORMS = (N_("batch"), N_("group"), N_("layer"))  # marked: the panel's dropdown shows them translated
GROUPS = 4  # groups for GroupNorm: 100 units -> 4 x 25; CNN channels (8, 16) -> 2 and 4 per group
CNN_CHANNELS = (8, 16)


# ----------------------------------------------------------------------------------------
# Data and bookkeeping
# ----------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def mnist_subset(train_size: int = TRAIN_SIZE, test_size: int = TEST_SIZE, seed: int = 0) -> MNIST:
    """A seeded random subset of the MNIST training images and the first ``test_size`` test images.

    Returns MNIST of tensors: x_train (train_size, 28, 28) float32 in [0, 1], y_train
    (train_size,) int64, x_test (test_size, 28, 28), y_test (test_size,). Loaded once per process.
    """
    full = load_mnist()  # uint8 arrays; only the subset is converted to float
    if not (1 <= train_size <= len(full.x_train) and 1 <= test_size <= len(full.x_test)):
        raise ValueError(f"train_size must be in 1..{len(full.x_train)} and test_size in "
                         f"1..{len(full.x_test)}, got {train_size} and {test_size}")
    chosen = torch.randperm(len(full.x_train), generator=torch.Generator().manual_seed(seed))[:train_size]

    def images(x):
        return torch.from_numpy(x.astype(np.float32) / 255.0)

    def labels(y):
        return torch.from_numpy(y.astype(np.int64))

    chosen = chosen.numpy()
    return MNIST(images(full.x_train[chosen]), labels(full.y_train[chosen]),
                 images(full.x_test[:test_size]), labels(full.y_test[:test_size]))


@contextmanager
def looking_only(model: nn.Module):
    """Forward passes (of a model in training mode, say) that change nothing and record no
    gradients: BN layers keep their running statistics (momentum 0; their batch counters are
    restored) and noisy BN layers reuse their last noise."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in layers]
    for m in layers:
        m.momentum = 0.0
        if isinstance(m, NoisyBatchNorm1d):
            m.redraw = False
    try:
        with torch.no_grad():
            yield model
    finally:
        for m, (momentum, count) in zip(layers, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)
            if isinstance(m, NoisyBatchNorm1d):
                m.redraw = True


def _progress(total: int, description: str, progress):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, disable=not show_progress(progress), leave=False)


_CACHE: dict = {}


def clear_cache() -> None:
    """Forget every remembered run and probe."""
    _CACHE.clear()


def _cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


# ----------------------------------------------------------------------------------------
# Normalization layers
# ----------------------------------------------------------------------------------------


class NoisyBatchNorm1d(nn.BatchNorm1d):
    """Batch normalization followed by noise that shifts every unit's distribution at every step.

    In training, after the usual BN output y (N, D), each unit j gets a random scale and shift,

        y_j  ->  scale_j * y_j + shift_j,   scale_j ~ U(1 - noise/2, 1 + noise/2),
                                            shift_j ~ U(-noise, noise),

    the same for all examples of the batch, drawn afresh at every training-mode call (one per
    SGD step; set ``redraw = False`` to reuse the last draw), from the layer's own seeded
    generator. So the distribution the next layer sees
    moves by up to ``noise`` (in units of BN's output) and changes its spread by up to a factor
    1 +- noise/2 at every step: a non-stationary, non-zero-mean, non-unit-variance shift, in the
    spirit of Santurkar et al. (2018, §2.1; they perturbed every activation of every example).
    In eval mode there is no noise: the noise's average effect is the identity (mean scale 1,
    mean shift 0), so the BN layer's running statistics and gamma, beta are used as they are.

    Args:
        num_features: D
        noise:        strength, 0 <= noise <= 2 (0: exactly nn.BatchNorm1d)
        seed:         seed of the noise
    """

    def __init__(self, num_features: int, noise: float = NOISE, seed: int = 0, **kwargs):
        super().__init__(num_features, **kwargs)
        if not 0 <= noise <= 2:
            raise ValueError(_("noise must be between 0 and 2, got {noise!r}").format(noise=noise))
        self.noise = float(noise)
        self.generator = torch.Generator().manual_seed(seed)
        self.last_scale = torch.ones(num_features)
        self.last_shift = torch.zeros(num_features)
        self.redraw = True  # False: reuse the last draw (to look at the network without moving it)

    def forward(self, x):
        y = super().forward(x)
        if not self.training or self.noise == 0:
            return y
        if self.redraw:
            u = torch.rand(2, self.num_features, generator=self.generator)
            self.last_scale = 1 + self.noise * (u[0] - 0.5)
            self.last_shift = self.noise * (2 * u[1] - 1)
        return y * self.last_scale + self.last_shift


class GhostBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalization whose training statistics come from groups of ``ghost_batch`` examples.

    A training batch of N = k * ghost_batch examples, (N, C) or (N, C, H, W), is split into k
    consecutive groups; each group is normalized with its own mean and biased variance per
    channel (over ghost_batch x H x W values), as if each group sat on its own device. The
    running statistics move once per call, towards the average of the k groups' means and
    unbiased variances (momentum as in torch; momentum=None is not supported). Eval mode is ordinary BN with running statistics.
    With ghost_batch = N this is exactly ``nn.BatchNorm1d`` / ``nn.BatchNorm2d``. (The name is
    Hoffer et al.'s, 2017.)
    """

    def __init__(self, num_features: int, ghost_batch: int, **kwargs):
        super().__init__(num_features, **kwargs)
        if int(ghost_batch) != ghost_batch or ghost_batch < 1:
            raise ValueError(_("ghost_batch must be a positive integer, got {ghost_batch!r}").format(
                ghost_batch=ghost_batch))
        self.ghost_batch = int(ghost_batch)

    def _check_input_dim(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(_("expected (N, C) or (N, C, H, W) input, got shape {shape}").format(
                shape=tuple(x.shape)))

    def forward(self, x):
        self._check_input_dim(x)
        if not self.training:
            return super().forward(x)
        n, b = x.shape[0], self.ghost_batch
        if n % b:
            raise ValueError(_("the batch ({n}) must be a multiple of ghost_batch ({b})").format(n=n, b=b))
        values = b * math.prod(x.shape[2:])
        if values == 1:
            raise ValueError(_("BatchNorm needs more than one value per channel in training: "
                               "a group of {b} example(s) with {features} features gives "
                               "one value per feature, whose variance is 0 and whose normalized "
                               "value is 0 whatever the input.").format(b=b, features=tuple(x.shape[1:])))
        k, c = n // b, x.shape[1]
        if k == 1:
            return super().forward(x)
        # Put the k groups side by side as k * C "channels" of a batch of b examples: one call
        # of F.batch_norm then normalizes every (group, channel) pair with its own statistics
        # and moves k * C running estimates, which are averaged back into the C real ones.
        side_by_side = x.reshape(k, b, *x.shape[1:]).transpose(0, 1).reshape(b, k * c, *x.shape[2:])
        running_mean, running_var = self.running_mean.repeat(k), self.running_var.repeat(k)
        x_hat = F.batch_norm(side_by_side, running_mean, running_var, None, None, True,
                             self.momentum, self.eps)
        with torch.no_grad():
            self.running_mean.copy_(running_mean.reshape(k, c).mean(dim=0))
            self.running_var.copy_(running_var.reshape(k, c).mean(dim=0))
            self.num_batches_tracked += 1
        x_hat = x_hat.reshape(b, k, *x.shape[1:]).transpose(0, 1).reshape(x.shape)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x_hat * self.weight.reshape(shape) + self.bias.reshape(shape)


def _mlp_norm(norm: str, units: int, noise: float, ghost_batch, seed: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm1d(units) if ghost_batch is None else GhostBatchNorm(units, ghost_batch)
    if norm == "noisy":
        return NoisyBatchNorm1d(units, noise=noise, seed=seed)
    if norm == "group":
        return nn.GroupNorm(GROUPS, units)
    if norm == "layer":
        return nn.GroupNorm(1, units)
    raise ValueError(f"norm must be one of {MLP_NORMS}, got {norm!r}")


class ReluMLP(nn.Module):
    """784 -> ``depth`` x ``hidden`` ReLU units -> 10, with He initialization (weights
    N(0, 2 / fan_in), biases 0), so that it trains with or without BN; with ``batchnorm``,
    BatchNorm1d before every ReLU (and no bias in the layer before it).

    Shapes: input (N, 784) or (N, 28, 28); output (N, 10). Same interface as ``Figure1MLP``
    (``linears``, ``norms``, ``forward(x, return_preactivations=False)``).
    """

    def __init__(self, batchnorm: bool = False, hidden: int = 100, depth: int = RELU_DEPTH,
                 seed=None):
        super().__init__()
        sizes = [28 * 28] + [hidden] * depth
        with seeded(seed):
            self.linears = nn.ModuleList(nn.Linear(a, b, bias=not batchnorm)
                                         for a, b in zip(sizes[:-1], sizes[1:]))
            self.norms = nn.ModuleList(nn.BatchNorm1d(b) if batchnorm else nn.Identity()
                                       for b in sizes[1:])
            self.output = nn.Linear(hidden, 10)
            for linear in self.linears:
                nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)

    def forward(self, x, return_preactivations=False):
        h, preactivations = x.flatten(1), []
        for linear, norm in zip(self.linears, self.norms):
            z = norm(linear(h))
            preactivations.append(z)
            h = torch.relu(z)
        logits = self.output(h)
        return (logits, preactivations) if return_preactivations else logits


def build_mlp(norm: str = "batch", noise: float = NOISE, ghost_batch=None, seed: int = 0,
              activation: str = "sigmoid") -> nn.Module:
    """The paper's Figure 1 network (784 -> 3 x 100 sigmoid -> 10) with a normalization before
    each sigmoid: "none", "batch" (with ``ghost_batch``: GhostBatchNorm), "noisy"
    (NoisyBatchNorm1d with ``noise``), "group" (GroupNorm, 4 groups of 25 units) or "layer"
    (one group of 100). The initial weights depend on ``seed`` only, not on the norm.
    With activation="relu": ``ReluMLP`` (4 x 100 ReLU, He initialization) instead."""
    if norm not in MLP_NORMS:
        raise ValueError(f"norm must be one of {MLP_NORMS}, got {norm!r}")
    if activation not in ("sigmoid", "relu"):
        raise ValueError(f"activation must be 'sigmoid' or 'relu', got {activation!r}")
    if activation == "relu":
        model = ReluMLP(batchnorm=norm != "none", seed=seed)
    else:
        model = Figure1MLP(batchnorm=norm != "none", seed=seed)
    if norm not in ("none", "batch") or ghost_batch is not None:
        for layer, old in enumerate(model.norms):
            model.norms[layer] = _mlp_norm(norm, old.num_features, noise, ghost_batch,
                                           seed=1000 * seed + layer)
    return model


def build_cnn(norm: str = "batch", ghost_batch=None, seed: int = 0) -> SmallCNN:
    """``SmallCNN`` with channels (8, 16) and "batch" (with ``ghost_batch``: GhostBatchNorm),
    "group" (4 groups) or "layer" normalization."""
    if norm not in SIZE_NORMS:
        raise ValueError(f"norm must be one of {SIZE_NORMS}, got {norm!r}")
    model = SmallCNN(norm=norm, channels=CNN_CHANNELS, num_groups=GROUPS, seed=seed)
    if norm == "batch" and ghost_batch is not None:
        model.norm1 = GhostBatchNorm(CNN_CHANNELS[0], ghost_batch)
        model.norm2 = GhostBatchNorm(CNN_CHANNELS[1], ghost_batch)
    return model


# ----------------------------------------------------------------------------------------
# Experiment 1: noisy BN, and the distribution one unit sees at every step
# ----------------------------------------------------------------------------------------


@dataclass
class MLPRun:
    """A ``train_mlp`` run.

    Attributes:
        norm, noise, seed, lr, batch_size, activation: the settings
        record_steps:  (R,) steps at which test accuracy was measured (0 = before training)
        test_accuracy: (R,) accuracy on the test subset, eval mode
        train_loss:    (T,) the mini-batch loss of every step
        unit_percentiles: (T, 3) the 15th, 50th and 85th percentiles of the tracked unit's
                       input to its sigmoid at every step, over a fixed probe set of
                       PROBE_IMAGES test images passed through the network as it was at that
                       step, in training mode (BN with the probe set's own statistics, noisy
                       BN with that step's noise): the distribution the unit meets, with the
                       mini-batch sampling noise taken out
        checkpoints:   {step: state_dict} every ``checkpoint_every`` steps (and at 0 and the end)
        seconds:       wall time
    """

    norm: str
    noise: float
    seed: int
    lr: float
    batch_size: int
    activation: str
    record_steps: np.ndarray
    test_accuracy: np.ndarray
    train_loss: np.ndarray
    unit_percentiles: np.ndarray
    checkpoints: dict = field(repr=False, default_factory=dict)
    seconds: float = 0.0
    key: tuple = ()

    @property
    def final_accuracy(self) -> float:
        return float(self.test_accuracy[-1])

    def accuracy_at(self, step: int) -> float:
        """Test accuracy recorded at ``step`` (ValueError if it was not recorded)."""
        matches = np.flatnonzero(self.record_steps == step)
        if not len(matches):
            raise ValueError(f"no test accuracy recorded at step {step}; recorded: {list(self.record_steps)}")
        return float(self.test_accuracy[matches[0]])

    def step_shift(self) -> float:
        """How far the tracked unit's distribution moves per step: the mean over steps and over
        the three percentiles of |q_t - q_(t-1)|, in the units of the sigmoid's input."""
        return float(np.abs(np.diff(self.unit_percentiles, axis=0)).mean())

    def drift(self) -> float:
        """How far the distribution ends up from where it started: the mean over the three
        percentiles of |q_T - q_1|, in the units of the sigmoid's input."""
        return float(np.abs(self.unit_percentiles[-1] - self.unit_percentiles[0]).mean())

    def model(self, step: int | None = None) -> Figure1MLP:
        """The network as it was at a checkpoint (default: the end), in train mode."""
        step = max(self.checkpoints) if step is None else step
        if step not in self.checkpoints:
            raise ValueError(f"no checkpoint at step {step}; checkpoints: {sorted(self.checkpoints)}")
        model = build_mlp(self.norm, noise=self.noise, seed=self.seed, activation=self.activation)
        model.load_state_dict(self.checkpoints[step])
        return model


def train_mlp(norm: str = "batch", noise: float = NOISE, seed: int = 0, steps: int = MLP_STEPS,
              lr: float | None = None, batch_size: int = MLP_BATCH, activation: str = "sigmoid",
              record_every: int = 25, checkpoint_every: int = 50, track: bool = True,
              progress=None) -> MLPRun:
    """Train the Figure 1 network ("none", "batch" or "noisy" BN; with activation="relu" the
    ``ReluMLP``) with plain SGD on the training subset, and record what experiments 1 and 2
    need (see ``MLPRun``). The learning rate defaults to MLP_LR (sigmoid) or RELU_LR (relu).
    With ``track=False`` the tracked unit is not recorded (unit_percentiles is (0, 3)), which
    saves a forward pass per step. Remembered per settings.

    norm="noisy" with noise=0 is the same network as norm="batch" (and returns that run).
    """
    if lr is None:
        lr = MLP_LR if activation == "sigmoid" else RELU_LR
    if norm not in ("none", "batch", "noisy"):
        raise ValueError(f"norm must be 'none', 'batch' or 'noisy', got {norm!r}")
    if not 0 <= noise <= 2:
        raise ValueError(f"noise must be between 0 and 2, got {noise!r}")
    if norm == "noisy" and noise == 0:
        norm = "batch"
    if norm != "noisy":
        noise = 0.0
    settings = dict(norm=norm, noise=float(noise), seed=seed, steps=steps, lr=lr,
                    batch_size=batch_size, activation=activation, record_every=record_every,
                    checkpoint_every=checkpoint_every, track=bool(track))
    key = ("mlp", tuple(sorted(settings.items())))
    return _cached(key, lambda: _train_mlp(**settings, key=key, progress=progress))


def _train_mlp(norm, noise, seed, steps, lr, batch_size, activation, record_every,
               checkpoint_every, track, key, progress):
    data = mnist_subset()
    x_train, x_test = data.x_train.flatten(1), data.x_test.flatten(1)
    model = build_mlp(norm, noise=noise, seed=seed, activation=activation)
    optimizer = SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    layer, unit = TRACKED_UNIT
    quantiles = torch.tensor(TRACKED_QUANTILES, dtype=torch.float32) / 100
    probe = x_test[:PROBE_IMAGES]
    record_steps, accuracies, losses, percentiles, checkpoints = [], [], [], [], {}

    def record(step):
        model.eval()
        with torch.no_grad():
            accuracies.append((model(x_test).argmax(dim=1) == data.y_test).float().mean().item())
        model.train()
        record_steps.append(step)

    started = time.perf_counter()
    with one_torch_thread(), seeded(seed), _progress(steps, f"{activation} MLP, {norm}", progress) as bar:
        record(0)
        checkpoints[0] = copy.deepcopy(model.state_dict())
        for step in range(1, steps + 1):
            batch = torch.randint(0, len(x_train), (batch_size,), generator=generator)
            loss = F.cross_entropy(model(x_train[batch]), data.y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            if track:
                with looking_only(model):  # the weights and the noise of this step
                    _output, preactivations = model(probe, return_preactivations=True)
                    percentiles.append(torch.quantile(preactivations[layer][:, unit], quantiles).numpy())
            optimizer.step()
            losses.append(loss.item())
            if step % record_every == 0 or step == steps:
                record(step)
            if step % checkpoint_every == 0 or step == steps:
                checkpoints[step] = copy.deepcopy(model.state_dict())
            bar.update(1)
    return MLPRun(norm=norm, noise=noise, seed=seed, lr=lr, batch_size=batch_size,
                  activation=activation, record_steps=np.array(record_steps), test_accuracy=np.array(accuracies),
                  train_loss=np.array(losses),
                  unit_percentiles=np.array(percentiles).reshape(-1, len(TRACKED_QUANTILES)),
                  checkpoints=checkpoints, seconds=time.perf_counter() - started, key=key)


def noise_sweep(noises, seed: int = 0, steps: int = MLP_STEPS, progress=None) -> dict:
    """``train_mlp("noisy", noise, seed, steps)`` for every noise in ``noises``, under one
    progress bar over the runs (a run already made is looked up, not retrained).

    Returns {noise: MLPRun} (noise 0 gives the BN run, as in ``train_mlp``)."""
    noises = [float(noise) for noise in noises]
    runs = {}
    with _progress(len(noises), "noisy BN, one run per noise", progress) as bar:
        for noise in noises:
            runs[noise] = train_mlp("noisy", noise=noise, seed=seed, steps=steps, progress=False)
            bar.update(1)
    return runs


# ----------------------------------------------------------------------------------------
# Experiment 2: the loss and its gradient along the gradient direction
# ----------------------------------------------------------------------------------------


@dataclass
class Probe:
    """What ``probe_along_gradient`` measured at one point w.

    Attributes:
        step_sizes:    (S,) the step sizes eta
        loss0:         L(w)
        grad_norm:     ||grad L(w)||
        losses:        (S,) L(w - eta * grad L(w))
        grad_changes:  (S,) ||grad L(w - eta * grad L(w)) - grad L(w)||
    """

    step_sizes: np.ndarray
    loss0: float
    grad_norm: float
    losses: np.ndarray
    grad_changes: np.ndarray

    @property
    def smoothness(self) -> float:
        """"Effective beta-smoothness" (Santurkar et al. 2018, Figure 4c): the largest
        gradient change per distance moved, max over eta of grad_change / (eta ||grad||)."""
        return float(np.max(self.grad_changes / (self.step_sizes * self.grad_norm)))


def probe_along_gradient(loss_and_gradient, w, step_sizes) -> Probe:
    """Walk from w along the negative gradient and record the loss and the gradient's change.

    Args:
        loss_and_gradient: function w -> (loss: float, gradient: array shaped like w)
        w:                 the point, a float array (any shape)
        step_sizes:        (S,) positive step sizes eta

    Returns:
        Probe with losses[k] = L(w - eta_k g) and grad_changes[k] = ||grad L(w - eta_k g) - g||
        (Euclidean norm over all entries), where g = grad L(w).
    """
    w = np.asarray(w, dtype=np.float64)
    step_sizes = np.asarray(step_sizes, dtype=np.float64).ravel()
    if step_sizes.size == 0 or np.any(step_sizes <= 0) or not np.all(np.isfinite(step_sizes)):
        raise ValueError(f"step_sizes must be positive finite numbers, got {step_sizes!r}")
    loss0, g = loss_and_gradient(w)
    g = np.asarray(g, dtype=np.float64)
    if g.shape != w.shape:
        raise ValueError(f"the gradient has shape {g.shape}, w has shape {w.shape}")
    losses, changes = [], []
    for eta in step_sizes:
        loss, g_eta = loss_and_gradient(w - eta * g)
        losses.append(float(loss))
        changes.append(float(np.linalg.norm(np.asarray(g_eta, dtype=np.float64) - g)))
    return Probe(step_sizes=step_sizes, loss0=float(loss0), grad_norm=float(np.linalg.norm(g)),
                 losses=np.array(losses), grad_changes=np.array(changes))


def model_loss_and_gradient(model: nn.Module, x, y):
    """The training loss of ``model`` on the batch (x, y) as a function of its flattened parameters.

    Returns (function, w0): function(w) -> (loss, gradient) with w and the gradient flat float64
    numpy arrays of all parameters, and w0 the model's current parameters. The function works on
    a private copy of the model in train mode whose BN layers do not update their running
    statistics (momentum 0), so evaluating it never changes ``model``.
    """
    probe_model = copy.deepcopy(model).train()
    for module in probe_model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.0
    parameters = list(probe_model.parameters())
    w0 = nn.utils.parameters_to_vector(parameters).detach().double().numpy()

    def loss_and_gradient(w):
        with torch.no_grad():
            nn.utils.vector_to_parameters(torch.as_tensor(w, dtype=torch.float32), parameters)
        probe_model.zero_grad()
        loss = F.cross_entropy(probe_model(x), y)
        loss.backward()
        gradient = torch.cat([p.grad.flatten() for p in parameters])
        return loss.item(), gradient.double().numpy()

    return loss_and_gradient, w0


@dataclass
class LandscapeProbe:
    """``landscape_probe`` of one run: a ``Probe`` at each checkpoint.

    Attributes:
        steps:  (K,) the checkpoints' steps
        probes: K Probes
    Convenience arrays: ``losses`` (K, S), ``grad_changes`` (K, S), ``smoothness`` (K,).
    """

    steps: np.ndarray
    probes: list

    @property
    def losses(self) -> np.ndarray:
        return np.array([p.losses for p in self.probes])

    @property
    def grad_changes(self) -> np.ndarray:
        return np.array([p.grad_changes for p in self.probes])

    @property
    def smoothness(self) -> np.ndarray:
        return np.array([p.smoothness for p in self.probes])


def landscape_probe(run: MLPRun, step_multiples=(0.25, 0.5, 1, 2, 4), probe_size: int = 1000,
                    steps=None) -> LandscapeProbe:
    """Probe a run's loss along the gradient at its checkpoints (all of them, or ``steps``).

    The loss is the training loss on a fixed batch of ``probe_size`` training images (BN uses
    that batch's statistics, as in training); the step sizes are ``step_multiples`` times the
    run's learning rate. Remembered per (run, multiples, probe_size, steps).
    """
    multiples = tuple(float(m) for m in step_multiples)
    chosen = tuple(sorted(run.checkpoints)) if steps is None else tuple(int(s) for s in steps)
    key = ("probe", run.key, multiples, probe_size, chosen)

    def make():
        data = mnist_subset()
        x, y = data.x_train[:probe_size].flatten(1), data.y_train[:probe_size]
        probes = []
        with one_torch_thread():
            for step in chosen:
                function, w0 = model_loss_and_gradient(run.model(step), x, y)
                probes.append(probe_along_gradient(function, w0, run.lr * np.array(multiples)))
        return LandscapeProbe(steps=np.array(chosen), probes=probes)

    return _cached(key, make)


# ----------------------------------------------------------------------------------------
# Experiment 3: how many examples feed each statistic
# ----------------------------------------------------------------------------------------


@dataclass
class SizeRun:
    """A ``batch_size_run``: the settings and the test accuracy (eval mode) after training.

    ``batch_size`` is the number of examples behind each BN statistic (None for GroupNorm and
    LayerNorm, whose statistics never mix examples)."""

    model_kind: str
    norm: str
    batch_size: int | None
    seed: int
    steps: int
    test_accuracy: float
    state: dict = field(repr=False, default_factory=dict)
    seconds: float = 0.0

    @property
    def test_error(self) -> float:
        return 1.0 - self.test_accuracy

    def model(self) -> nn.Module:
        """The trained network, in eval mode."""
        model = _build_for_size(self.model_kind, self.norm, self.batch_size, self.seed)
        model.load_state_dict(self.state)
        return model.eval()


def _build_for_size(model_kind, norm, batch_size, seed):
    if model_kind == "cnn":
        return build_cnn(norm, ghost_batch=batch_size, seed=seed)
    return build_mlp(norm, ghost_batch=batch_size, seed=seed)


def check_size_settings(model_kind: str, norm: str, batch_size: int) -> None:
    """Raise ValueError for settings ``batch_size_run`` cannot train (with the reason)."""
    if model_kind not in SIZE_SETTINGS:
        raise ValueError(f"model_kind must be 'cnn' or 'mlp', got {model_kind!r}")
    if norm not in SIZE_NORMS:
        raise ValueError(f"norm must be one of {SIZE_NORMS}, got {norm!r}")
    if batch_size not in BATCH_SIZES:
        raise ValueError(f"batch_size must be one of {BATCH_SIZES} (divisors of {SGD_BATCH}), "
                         f"got {batch_size!r}")
    if model_kind == "mlp" and norm == "batch" and batch_size == 1:
        raise ValueError(_("BatchNorm needs more than one value per feature in training: in a fully "
                           "connected layer a batch of one example gives each unit a single value, "
                           "with variance 0 (torch raises 'Expected more than 1 value per channel "
                           "when training')."))


def batch_size_run(model_kind: str = "cnn", norm: str = "batch", batch_size: int = SGD_BATCH,
                   seed: int = 0, steps: int | None = None, progress=None) -> SizeRun:
    """Train the small CNN (``model_kind="cnn"``) or the Figure 1 MLP ("mlp") with BN computed
    over groups of ``batch_size`` examples, or with GroupNorm / LayerNorm, and measure its test
    accuracy in eval mode.

    Every run takes the same number of SGD steps of SGD_BATCH = 32 examples, at the same
    learning rate (SIZE_SETTINGS; ``steps`` overrides the number of steps): only the examples
    behind BN's statistics change. GroupNorm and LayerNorm do not depend on ``batch_size``, so
    their run is shared by every batch size. Remembered per settings.
    """
    check_size_settings(model_kind, norm, batch_size)
    size = batch_size if norm == "batch" else None
    steps = SIZE_SETTINGS[model_kind]["steps"] if steps is None else int(steps)
    key = ("size", model_kind, norm, size, seed, steps)
    return _cached(key, lambda: _train_for_size(model_kind, norm, size, seed, steps, progress))


def _train_for_size(model_kind, norm, batch_size, seed, steps, progress):
    settings = SIZE_SETTINGS[model_kind]
    data = mnist_subset()
    if model_kind == "cnn":
        x_train, x_test = data.x_train.unsqueeze(1), data.x_test.unsqueeze(1)
    else:
        x_train, x_test = data.x_train.flatten(1), data.x_test.flatten(1)
    model = _build_for_size(model_kind, norm, batch_size, seed)
    optimizer = SGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"])
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    label = f"{model_kind}, {norm}" + (f", BN over {batch_size}" if batch_size else "")
    with one_torch_thread(), seeded(seed), _progress(steps, label, progress) as bar:
        model.train()
        for _step in range(steps):
            batch = torch.randint(0, len(x_train), (SGD_BATCH,), generator=generator)
            loss = F.cross_entropy(model(x_train[batch]), data.y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.update(1)
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(dim=1) == data.y_test).float().mean().item()
    return SizeRun(model_kind=model_kind, norm=norm, batch_size=batch_size, seed=seed,
                   steps=steps, test_accuracy=accuracy, state=copy.deepcopy(model.state_dict()),
                   seconds=time.perf_counter() - started)


def batch_size_sweep(model_kind: str, batch_sizes, seeds=(0,), steps: int | None = None,
                     progress=None) -> dict:
    """``batch_size_run`` for BN at every batch size in ``batch_sizes`` and for GroupNorm and
    LayerNorm (one run each: they do not depend on the batch size), for every seed (``steps``:
    as in ``batch_size_run``).

    Returns {norm: {batch_size: [SizeRun per seed]}}; GroupNorm's and LayerNorm's runs are
    listed under every batch size.
    """
    sweep = {}
    for norm in SIZE_NORMS:
        for size in batch_sizes:
            sweep.setdefault(norm, {})[size] = [
                batch_size_run(model_kind, norm, size, seed=seed, steps=steps, progress=progress)
                for seed in seeds]
    return sweep


def remembered_size_runs(model_kind: str) -> list:
    """Every ``batch_size_run`` of this model with the default number of steps made so far in
    this process (the notebook's sweep, and whatever the widget ran), in the order they ran."""
    default_steps = SIZE_SETTINGS[model_kind]["steps"]
    return [run for key, run in _CACHE.items()
            if key[0] == "size" and key[1] == model_kind and key[5] == default_steps]


def normalizing_means(model_kind: str, norm: str, batch_size: int, images: int = 512,
                      seed: int = 0, steps: int | None = None) -> dict:
    """The mean that normalizes each of ``images`` test images at the first normalization layer,
    channel (or unit) 0, in training mode, and what eval mode uses instead.

    For BN that is the mean of the group of ``batch_size`` images the image shares a batch
    with (over the group's images, and positions for the CNN); for GroupNorm / LayerNorm it is
    the image's own group mean, whatever the batch size. The input to the layer is computed
    with the trained weights of ``batch_size_run(model_kind, norm, batch_size, seed, steps)``.

    Returns dict: per_image (images,) the training-mode means; eval_mean and eval_std, the
    running mean and the square root of the running variance BN uses in eval mode (None for
    GroupNorm / LayerNorm, which normalize each image by its own statistics in eval mode too);
    values_per_statistic, how many numbers each mean averages. Remembered per settings (the
    same dict for the same arguments).
    """
    check_size_settings(model_kind, norm, batch_size)
    key = ("means", model_kind, norm, batch_size, images, seed, steps)
    return _cached(key, lambda: _normalizing_means(model_kind, norm, batch_size, images, seed, steps))


def _normalizing_means(model_kind, norm, batch_size, images, seed, steps) -> dict:
    run = batch_size_run(model_kind, norm, batch_size, seed, steps, progress=False)
    model = run.model()
    data = mnist_subset()
    x = data.x_test[:images]
    with torch.no_grad():
        if model_kind == "cnn":
            z = model.conv1(x.unsqueeze(1))  # (n, C, 28, 28)
            norm_layer = model.norm1
        else:
            z = model.linears[0](x.flatten(1)).unsqueeze(-1).unsqueeze(-1)  # (n, 100, 1, 1)
            norm_layer = model.norms[0]
        n, c, h, w = z.shape
        if norm == "batch":
            usable = n - n % batch_size
            groups = z[:usable, 0].reshape(usable // batch_size, batch_size * h * w)
            per_image = groups.mean(dim=1).repeat_interleave(batch_size)
            eval_mean = float(norm_layer.running_mean[0])
            eval_std = float(norm_layer.running_var[0].sqrt())
            values = batch_size * h * w
        else:
            num_groups = GROUPS if norm == "group" else 1
            per_group = c // num_groups
            per_image = z[:, :per_group].reshape(n, -1).mean(dim=1)
            eval_mean = eval_std = None
            values = per_group * h * w
    return dict(per_image=per_image.double().numpy(), eval_mean=eval_mean, eval_std=eval_std,
                values_per_statistic=values)


def train_mode_accuracy(run: SizeRun) -> float:
    """Test accuracy of a BN ``batch_size_run`` with training-mode statistics: the test images
    are normalized in groups of ``run.batch_size``, as the training images were (the running
    statistics are left untouched). Compare with ``run.test_accuracy`` (eval mode)."""
    if run.norm != "batch":
        raise ValueError(_("only BN runs have a training mode that differs from eval mode"))
    data = mnist_subset()
    usable = len(data.x_test) - len(data.x_test) % run.batch_size
    x = data.x_test[:usable]
    x = x.unsqueeze(1) if run.model_kind == "cnn" else x.flatten(1)
    model = run.model().train()
    with one_torch_thread(), looking_only(model):
        predictions = model(x).argmax(dim=1)
    return (predictions == data.y_test[:usable]).float().mean().item()


# ----------------------------------------------------------------------------------------
# GroupNorm's statistics (numpy; the exercise's reference)
# ----------------------------------------------------------------------------------------


def group_statistics(x, num_groups: int):
    """Per-sample, per-group mean and biased variance, as GroupNorm uses them.

    Args:
        x:          (N, C) or (N, C, H, W) array
        num_groups: G, a divisor of C; group g holds the consecutive channels
                    g * C/G ... (g + 1) * C/G - 1

    Returns:
        (mean, var), each (N, G), float64: over the group's C/G channels and all positions.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (2, 4):
        raise ValueError(f"x must be (N, C) or (N, C, H, W), got shape {x.shape}")
    n, c = x.shape[:2]
    if int(num_groups) != num_groups or num_groups < 1 or c % num_groups:
        raise ValueError(_("num_groups must be a positive divisor of the {c} channels, got {num_groups!r}").format(
            c=c, num_groups=num_groups))
    grouped = x.reshape(n, int(num_groups), -1)
    mean = grouped.mean(axis=2)
    var = ((grouped - mean[:, :, None]) ** 2).mean(axis=2)
    return mean, var


# ----------------------------------------------------------------------------------------
# The panels' runs: every setting of the three widgets, trained once and shipped in data/
# ----------------------------------------------------------------------------------------

#: The noisy-BN panel's slider: noise from 0 to 2 in steps of NOISE_STEP.
NOISE_STEP = 0.25
PANEL_NOISES = tuple(k * NOISE_STEP for k in range(9))
#: The gradient-walk panel: step sizes 2^(k/2) learning rates for k = -6..8 (1/8 to 16), the
#: loss on WALK_IMAGES training images, at the checkpoints (every CHECKPOINT_EVERY steps) of
#: the ReLU MLP without and with BN.
WALK_MULTIPLES = tuple(2.0 ** (k / 2) for k in range(-6, 9))
WALK_IMAGES = 256
CHECKPOINT_EVERY = 50
#: The batch-size panel shows the means that normalize this many test images.
PANEL_MEAN_IMAGES = 512

PANEL_RUNS_FILENAME = "why_bn_works_panel_runs.json"
#: Its sha256; ``load_panel_runs`` refuses a file with any other.
PANEL_RUNS_SHA256 = "670e5fb3182a5c98e2f8f233600256135323c3e70c27c69df2981ea0279b1cb8"
PANEL_RUNS_COMMAND = "python -m tools.record_panel_runs why_bn_works"


def panel_run_plan() -> dict:
    """{key: task} for every entry of the record: the noisy-BN panel's MLP runs (no BN, BN,
    and noisy BN at each noise of PANEL_NOISES but 0, which is BN), the gradient-walk panel's
    two ReLU runs with their probes, and the batch-size panel's runs (each model with BN at
    every batch size it can train, GroupNorm and LayerNorm); all seed 0, default lengths."""
    plan = {"mlp none": ("mlp", "none", 0.0), "mlp batch": ("mlp", "batch", 0.0)}
    for noise in PANEL_NOISES[1:]:
        plan[f"mlp noisy {noise!r}"] = ("mlp", "noisy", noise)
    for norm in ("none", "batch"):
        plan[f"walk {norm}"] = ("walk", norm)
    for model_kind in ("mlp", "cnn"):
        for norm in SIZE_NORMS:
            for size in (BATCH_SIZES if norm == "batch" else (SGD_BATCH,)):
                if model_kind == "mlp" and norm == "batch" and size == 1:
                    continue
                plan[_size_key(model_kind, norm, size)] = ("size", model_kind, norm, size)
    return plan


def _size_key(model_kind: str, norm: str, batch_size: int) -> str:
    return f"size {model_kind} {norm}" + (f" {batch_size}" if norm == "batch" else "")


def _record_task(task: tuple) -> dict:
    """One entry of the record (a worker function: picklable, importable by spawn)."""
    from helpers.data import float32_values

    if task[0] == "mlp":
        run = train_mlp(task[1], noise=task[2], seed=0, progress=False)
        return dict(record_steps=[int(s) for s in run.record_steps],
                    test_accuracy=float32_values(run.test_accuracy),
                    train_loss=float32_values(run.train_loss),
                    unit_percentiles=float32_values(run.unit_percentiles))
    if task[0] == "walk":
        run = train_mlp(task[1], seed=0, activation="relu", track=False, progress=False)
        landscape = landscape_probe(run, WALK_MULTIPLES, probe_size=WALK_IMAGES)
        return dict(steps=[int(s) for s in landscape.steps], lr=run.lr, probes=[
            dict(loss0=p.loss0, grad_norm=p.grad_norm, losses=p.losses.tolist(),
                 grad_changes=p.grad_changes.tolist()) for p in landscape.probes])
    _kind, model_kind, norm, size = task
    run = batch_size_run(model_kind, norm, size, seed=0, progress=False)
    means = normalizing_means(model_kind, norm, size, images=PANEL_MEAN_IMAGES)
    return dict(test_accuracy=run.test_accuracy, steps=run.steps,
                per_image=float32_values(means["per_image"]), eval_mean=means["eval_mean"],
                eval_std=means["eval_std"], values_per_statistic=means["values_per_statistic"])


def record_panel_runs(path=None, jobs: int = 1) -> tuple[Path, str]:
    """Train every entry of ``panel_run_plan`` and write the record as JSON (maintainers only:
    about a minute of CPU time; each run on one torch thread, so it does not depend on ``jobs``).

    Returns:
        (path, sha256 of the file written)
    """
    from helpers.data import record_path, record_versions, run_each, write_record

    plan = panel_run_plan()
    results = run_each(_record_task, plan.values(), jobs)
    record = {
        "what": "notebook 07's panels: the noisy-BN runs at every noise of the slider, the ReLU "
                "runs' walks along the gradient at every checkpoint, and the batch-size runs of "
                "both models at every setting, trained once and recorded",
        "command": PANEL_RUNS_COMMAND,
        "versions": record_versions(),
        "torch_threads": 1,
        "settings": dict(seed=0, train_size=TRAIN_SIZE, test_size=TEST_SIZE, mlp_steps=MLP_STEPS,
                         mlp_lr=MLP_LR, relu_lr=RELU_LR, noises=list(PANEL_NOISES),
                         walk_multiples=list(WALK_MULTIPLES), walk_images=WALK_IMAGES,
                         size_settings=SIZE_SETTINGS, mean_images=PANEL_MEAN_IMAGES),
        "storage": "values training produced in float32 as their shortest decimals, float64 "
                   "values in full (both exact)",
        "entries": {key: {"task": list(task), **result}
                    for (key, task), result in zip(plan.items(), results)},
    }
    path = record_path(PANEL_RUNS_FILENAME) if path is None else Path(path)
    return path, write_record(path, record)


@dataclass(frozen=True)
class PanelRuns:
    """The record of ``record_panel_runs``, as the panels use it (``load_panel_runs``).

    Attributes:
        noisy:  {norm or (\"noisy\", noise): MLPRun} the noisy-BN panel's runs (no checkpoints)
        walks:  {"none" | "batch": LandscapeProbe} the ReLU runs' walks at every checkpoint
        sizes:  {(model_kind, norm, batch_size or None): (SizeRun without weights, normalizing
                means as ``normalizing_means`` returns them)}
        entries: the raw JSON entries, by key (for tests)
    """

    noisy: dict
    walks: dict
    sizes: dict
    entries: dict


def _mlp_run_from_entry(norm, noise, entry) -> MLPRun:
    return MLPRun(norm=norm, noise=float(noise), seed=0, lr=MLP_LR, batch_size=MLP_BATCH,
                  activation="sigmoid", record_steps=np.array(entry["record_steps"]),
                  test_accuracy=np.array(entry["test_accuracy"], dtype=np.float64),
                  train_loss=np.array(entry["train_loss"], dtype=np.float64),
                  unit_percentiles=np.array(entry["unit_percentiles"], dtype=np.float32).reshape(
                      -1, len(TRACKED_QUANTILES)))


@lru_cache(maxsize=1)
def _panel_runs(path, verify: bool) -> PanelRuns:
    from helpers.data import load_record

    record = load_record(PANEL_RUNS_FILENAME, PANEL_RUNS_SHA256, PANEL_RUNS_COMMAND, path=path,
                         verify=verify)
    noisy, walks, sizes = {}, {}, {}
    for entry in record["entries"].values():
        task = entry["task"]
        if task[0] == "mlp":
            noisy[task[1] if task[1] != "noisy" else ("noisy", float(task[2]))] = \
                _mlp_run_from_entry(task[1], task[2], entry)
        elif task[0] == "walk":
            multiples = np.array(WALK_MULTIPLES)
            walks[task[1]] = LandscapeProbe(steps=np.array(entry["steps"]), probes=[
                Probe(step_sizes=entry["lr"] * multiples, loss0=p["loss0"], grad_norm=p["grad_norm"],
                      losses=np.array(p["losses"]), grad_changes=np.array(p["grad_changes"]))
                for p in entry["probes"]])
        else:
            _kind, model_kind, norm, size = task
            size = size if norm == "batch" else None
            run = SizeRun(model_kind=model_kind, norm=norm, batch_size=size, seed=0,
                          steps=entry["steps"], test_accuracy=entry["test_accuracy"])
            means = dict(per_image=np.array(entry["per_image"], dtype=np.float64),
                         eval_mean=entry["eval_mean"], eval_std=entry["eval_std"],
                         values_per_statistic=entry["values_per_statistic"])
            sizes[(model_kind, norm, size)] = (run, means)
    return PanelRuns(noisy=noisy, walks=walks, sizes=sizes, entries=record["entries"])


def load_panel_runs(path=None, verify: bool = True) -> PanelRuns:
    """The recorded runs of notebook 07's panels (``data/why_bn_works_panel_runs.json``), read
    once per process after checking its sha256.

    Raises:
        helpers.data.DataFileError: the file is missing or is not the recorded one.
    """
    return _panel_runs(None if path is None else str(path), verify)
