"""Running (inference) statistics of batch normalization, simulated: the computations of notebook 04.

- the exponential moving average (EMA) and its weights: ``ema_weights``, ``moving_average``,
  ``bias_corrected``;
- streams of mini-batches and the running estimates a BN layer keeps from them:
  ``batch_stream``, ``running_statistics`` (built on ``helpers.bn.update_running_stats``);
- the bias of the biased batch variance: ``biased_variance_ratio``;
- a stream whose distribution drifts and then settles, as a layer's input does while the
  weights before it train and after they stop: ``drifting_stream``;
- a small BN network trained on MNIST, frozen, with the pre-BN activations of its BN layer
  precomputed, so that running statistics can be replayed and evaluated fast:
  ``trained_bn_mlp``, ``frozen_bn_layer``; its trained weights, recorded in ``data/`` so that
  the notebook's panel draws at once without training (``recorded_bn_mlp``,
  ``record_trained_layer``).

Conventions as in ``helpers.bn``: ``momentum`` weights the new batch (torch), ``momentum=None``
is the cumulative average, the running variance is stored unbiased. Everything is seeded.
torch is imported only by the two model functions at the end.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from helpers.bn import update_running_stats
from helpers.i18n import _

__all__ = [
    "FrozenBNLayer",
    "RunningTrace",
    "batch_stream",
    "bias_corrected",
    "biased_variance_ratio",
    "drifting_stream",
    "ema_weights",
    "frozen_bn_layer",
    "mnist_flat",
    "record_trained_layer",
    "recorded_bn_mlp",
    "moving_average",
    "running_statistics",
    "trained_bn_mlp",
]


def _check_momentum(momentum, allow_none: bool = True) -> None:
    """momentum must be a number in [0, 1], or None where the cumulative average is allowed."""
    if momentum is None and allow_none:
        return
    if momentum is None or not 0.0 <= momentum <= 1.0:
        if allow_none:
            message = _("momentum must be a number in [0, 1] (the weight of the new batch, torch's "
                        "default is 0.1) or None; got {momentum}")
        else:
            message = _("momentum must be a number in [0, 1] (the weight of the new batch, torch's "
                        "default is 0.1); got {momentum}")
        raise ValueError(message.format(momentum=repr(momentum)))


# ----------------------------------------------------------------------------------------
# The exponential moving average
# ----------------------------------------------------------------------------------------


def ema_weights(momentum: float, steps: int) -> np.ndarray:
    """The weight of each batch in the EMA after ``steps`` updates.

    Unrolling r_t = (1 - m) r_{t-1} + m b_t gives
    r_t = (1 - m)^t r_0 + sum_k m (1 - m)^(t - k) b_k, so batch k (1-based) has weight
    m (1 - m)^(t - k): the newest batch m, the one before m (1 - m), and so on. The weights
    sum to 1 - (1 - m)^t; the rest, (1 - m)^t, stays on the initial value r_0.

    Args:
        momentum: m in [0, 1], the weight of the newest batch
        steps:    t >= 0, the number of updates

    Returns:
        (steps,) weights of batches 1..t (oldest first)
    """
    _check_momentum(momentum, allow_none=False)
    if int(steps) != steps or steps < 0:
        raise ValueError(_("steps must be a non-negative integer, got {steps}").format(steps=repr(steps)))
    age = np.arange(steps - 1, -1, -1)  # t - k for k = 1..t
    return momentum * (1.0 - momentum) ** age


def moving_average(values, momentum: float | None, initial=0.0) -> np.ndarray:
    """The running estimate after each of a sequence of observations.

    Args:
        values:   (T, ...) one observation per step (e.g. batch means, (T, D))
        momentum: weight of the new value, r_t = (1 - m) r_{t-1} + m v_t (torch's convention);
                  None for the cumulative average r_t = (v_1 + ... + v_t) / t
        initial:  r_0, broadcast to the shape of one observation (ignored when momentum is None)

    Returns:
        (T, ...) the estimate after steps 1..T
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim < 1 or len(values) == 0:
        raise ValueError(_("values must be (T, ...) with T >= 1, got shape {shape}").format(shape=values.shape))
    _check_momentum(momentum)
    if momentum is None:
        steps = np.arange(1, len(values) + 1).reshape((-1,) + (1,) * (values.ndim - 1))
        return np.cumsum(values, axis=0) / steps
    out = np.empty_like(values)
    estimate = np.broadcast_to(np.asarray(initial, dtype=np.float64), values.shape[1:])
    for t, value in enumerate(values):
        estimate = (1.0 - momentum) * estimate + momentum * value
        out[t] = estimate
    return out


def bias_corrected(trajectory, momentum: float, initial=0.0) -> np.ndarray:
    """Remove the start-up bias of an EMA, as Adam does for its moment estimates.

    After t steps the EMA puts weight (1 - m)^t on its initial value r_0 and 1 - (1 - m)^t on
    the observations. Taking r_0 out and renormalizing gives the weighted average of the
    observations alone: (r_t - (1 - m)^t r_0) / (1 - (1 - m)^t). (torch does not do this.)

    Args:
        trajectory: (T, ...) EMA after steps 1..T, from ``moving_average(values, momentum, initial)``
        momentum:   the EMA's momentum, in (0, 1]
        initial:    its r_0

    Returns:
        (T, ...) bias-corrected estimates
    """
    trajectory = np.asarray(trajectory, dtype=np.float64)
    if momentum is None or not 0.0 < momentum <= 1.0:
        raise ValueError(_("momentum must be in (0, 1] for a bias correction, got {momentum}").format(
            momentum=repr(momentum)))
    steps = np.arange(1, len(trajectory) + 1).reshape((-1,) + (1,) * (trajectory.ndim - 1))
    left_on_initial = (1.0 - momentum) ** steps
    return (trajectory - left_on_initial * np.asarray(initial)) / (1.0 - left_on_initial)


# ----------------------------------------------------------------------------------------
# Streams of batches and the running statistics a BN layer keeps
# ----------------------------------------------------------------------------------------


def batch_stream(num_examples: int, batch_size: int, steps: int, order: str = "shuffled",
                 labels=None, seed: int = 0) -> np.ndarray:
    """Which examples make up each mini-batch of a training stream.

    Args:
        num_examples: n, the size of the training set
        batch_size:   examples per batch, 1 <= batch_size <= n
        steps:        number of batches T
        order:        "shuffled" (a fresh random permutation every epoch, as training does),
                      "iid" (every example drawn at random with replacement: independent batches,
                      as from an endless population), or "sorted" (examples sorted by ``labels``,
                      consecutive batches: a non-i.i.d. stream, every batch from one or two classes)
        labels:       (n,) class of each example, needed for order="sorted"
        seed:         seeds the shuffling

    Returns:
        (T, batch_size) integer indices into the training set. The stream runs through the
        set epoch after epoch ("shuffled", "sorted"); a batch may straddle two epochs.
    """
    if batch_size < 1 or batch_size > num_examples:
        raise ValueError(_("batch_size must be in 1..{num_examples}, got {batch_size}").format(
            num_examples=num_examples, batch_size=repr(batch_size)))
    if steps < 1:
        raise ValueError(_("steps must be >= 1, got {steps}").format(steps=repr(steps)))
    total = steps * batch_size
    epochs = -(-total // num_examples)  # ceiling
    if order == "iid":
        return np.random.default_rng(seed).integers(num_examples, size=(steps, batch_size))
    if order == "shuffled":
        rng = np.random.default_rng(seed)
        stream = np.concatenate([rng.permutation(num_examples) for _epoch in range(epochs)])
    elif order == "sorted":
        if labels is None or len(labels) != num_examples:
            raise ValueError(_("order='sorted' needs labels, one per example"))
        stream = np.tile(np.argsort(np.asarray(labels), kind="stable"), epochs)
    else:
        raise ValueError(_("order must be 'shuffled', 'iid' or 'sorted', got {order}").format(order=repr(order)))
    return stream[:total].reshape(steps, batch_size)


@dataclass
class RunningTrace:
    """A BN layer's statistics over a stream of T batches of D features.

    Attributes:
        batch_mean:   (T, D) each batch's mean
        batch_var:    (T, D) each batch's biased variance (what training normalizes with)
        running_mean: (T, D) the running mean after each batch
        running_var:  (T, D) the running (unbiased) variance after each batch
        batch_size:   values per feature in each batch, n
        momentum:     the momentum used (None: cumulative average)
    """

    batch_mean: np.ndarray
    batch_var: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray
    batch_size: int
    momentum: float | None


def running_statistics(batches, momentum: float | None = 0.1, initial_mean=0.0,
                       initial_var=1.0) -> RunningTrace:
    """Replay a stream of batches through a BN layer's running-statistics update.

    Each step is ``helpers.bn.update_running_stats`` (torch's rule); momentum=None uses
    1 / t for the t-th batch, torch's cumulative average, which does not depend on the
    initial values.

    Args:
        batches:      (T, n, D) T batches of n values of D features (n >= 2)
        momentum:     weight of each new batch, or None for the cumulative average
        initial_mean, initial_var: the starting estimates (torch: 0 and 1), scalars or (D,)

    Returns:
        RunningTrace with (T, D) arrays
    """
    batches = np.asarray(batches)
    if batches.ndim != 3:
        raise ValueError(_("batches must be (T, n, D), got shape {shape}").format(shape=batches.shape))
    steps, n, d = batches.shape
    if n < 2:
        raise ValueError(
            _("a batch needs at least 2 values per feature to have a variance, got n = {n}").format(n=n)
        )
    _check_momentum(momentum)
    batch_mean = batches.mean(axis=1, dtype=np.float64)  # (T, D)
    batch_var = ((batches - batch_mean[:, None, :]) ** 2).mean(axis=1, dtype=np.float64)  # (T, D)
    running_mean = np.empty((steps, d))
    running_var = np.empty((steps, d))
    mean = np.broadcast_to(np.asarray(initial_mean, dtype=np.float64), (d,))
    var = np.broadcast_to(np.asarray(initial_var, dtype=np.float64), (d,))
    for t in range(steps):
        factor = 1.0 / (t + 1) if momentum is None else momentum
        mean, var = update_running_stats(mean, var, batch_mean[t], batch_var[t], n, factor)
        running_mean[t], running_var[t] = mean, var
    return RunningTrace(batch_mean, batch_var, running_mean, running_var, n, momentum)


# ----------------------------------------------------------------------------------------
# The bias of the biased batch variance
# ----------------------------------------------------------------------------------------


def biased_variance_ratio(batch_sizes, trials: int = 20000, seed: int = 0):
    """Simulate E[sigma_B^2] / sigma^2 for the biased batch variance of normal data.

    The biased variance of m i.i.d. values, (1/m) sum (x_i - mean)^2, has expectation
    (m - 1)/m sigma^2: it measures the spread around the batch's own mean, which sits closer
    to the batch than the true mean does. Multiplying by m/(m - 1) (Algorithm 2, step 10)
    removes the bias.

    Args:
        batch_sizes: the m values to try (each >= 2)
        trials:      batches per m
        seed:        seeds the draws

    Returns:
        (simulated, theory): two (len(batch_sizes),) arrays, the mean of sigma_B^2 / sigma^2
        over ``trials`` batches, and (m - 1)/m
    """
    batch_sizes = np.asarray(batch_sizes)
    if np.any(batch_sizes < 2):
        raise ValueError(_("every batch size must be >= 2 (one value has no spread)"))
    rng = np.random.default_rng(seed)
    sigma = 3.0  # any sigma: the ratio does not depend on it
    simulated = np.array([
        rng.normal(5.0, sigma, size=(trials, m)).var(axis=1).mean() / sigma**2
        for m in batch_sizes
    ])
    return simulated, (batch_sizes - 1) / batch_sizes


# ----------------------------------------------------------------------------------------
# A drifting stream: the input of a BN layer while the weights before it train
# ----------------------------------------------------------------------------------------


def drifting_stream(steps: int = 600, batch_size: int = 32, drift_steps: int = 300,
                    start_mean: float = 2.0, end_mean: float = -1.0, std: float = 1.0,
                    seed: int = 0):
    """Batches of one feature whose mean moves from ``start_mean`` to ``end_mean`` over the
    first ``drift_steps`` batches (weights still training) and then stays there (training over).

    The mean follows end + (start - end) * exp(-5 t / drift_steps) during the drift, a smooth
    approach like a training curve, and equals ``end_mean`` afterwards.

    Returns:
        (batches (steps, batch_size, 1), true_mean (steps,)): the values and the mean of the
        distribution each batch was drawn from
    """
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    true_mean = end_mean + (start_mean - end_mean) * np.exp(-5.0 * t / drift_steps)
    true_mean[t >= drift_steps] = end_mean
    batches = true_mean[:, None, None] + std * rng.standard_normal((steps, batch_size, 1))
    return batches, true_mean


# ----------------------------------------------------------------------------------------
# A small trained BN network, frozen, for replaying running statistics
# ----------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def mnist_flat():
    """MNIST as flat float32 tensors, loaded once per process and shared (do not modify them).

    Returns:
        ``helpers.data.mnist_tensors(flatten=True)``: x_train (60000, 784) in [0, 1],
        y_train (60000,) int64, x_test (10000, 784), y_test (10000,)
    """
    from helpers.data import mnist_tensors

    return mnist_tensors(flatten=True)


@lru_cache(maxsize=4)
def _train_bn_mlp(batch_size: int, steps: int, lr: float, hidden: int, depth: int, seed: int):
    from helpers.models import Figure1MLP
    from helpers.training import one_torch_thread, train_classifier

    data = mnist_flat()
    model = Figure1MLP(batchnorm=True, hidden=hidden, depth=depth, seed=seed)
    with one_torch_thread():
        history = train_classifier(
            model, data.x_train, data.y_train, data.x_test[:2000], data.y_test[:2000],
            steps=steps, batch_size=batch_size, lr=lr, record_every=steps, seed=seed,
            description=_("training a BN MLP, batch {batch_size}").format(batch_size=batch_size),
        )
    model.eval()
    return model, history


def trained_bn_mlp(batch_size: int = 60, steps: int = 400, lr: float = 0.5, hidden: int = 100,
                   depth: int = 1, seed: int = 0):
    """A ``Figure1MLP`` with batch normalization trained briefly on MNIST (SGD, cross-entropy).

    The run is cached: calling again with the same arguments returns a fresh copy of the same
    trained model (so that a notebook may change the copy's running statistics freely).

    Args:
        batch_size, steps, lr: training settings
        hidden, depth:  the network (784 -> depth x hidden sigmoid units with BN -> 10)
        seed:           seeds the initial weights and the batch order

    Returns:
        (model in eval mode, helpers.training.History); the history's accuracies are on the
        first 2,000 test images
    """
    model, history = _train_bn_mlp(batch_size, steps, lr, hidden, depth, seed)
    return copy.deepcopy(model), history


@dataclass(frozen=True)
class FrozenBNLayer:
    """The first BN layer of a trained ``Figure1MLP`` (depth 1), with its input precomputed.

    The weights are frozen, so the layer's input distribution no longer changes: the
    "population" statistics are exact numbers, and any running estimate can be judged against
    them and plugged in to see the test accuracy it gives.

    Attributes:
        train_z, train_labels: (n, D) the BN layer's input (W x) for n training images; (n,)
        test_z, test_labels:   (n_test, D) and (n_test,) the same for test images
        gamma, beta:           (D,) the trained BN parameters
        eps:                   the BN layer's eps
        readout_weight:        (10, D) the output layer's weight, readout_bias (10,)
        population_mean:       (D,) mean of train_z
        population_var:        (D,) variance of train_z (over all n images)
        trained_running_mean, trained_running_var: (D,) what training left in the layer
    """

    train_z: np.ndarray
    train_labels: np.ndarray
    test_z: np.ndarray
    test_labels: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    eps: float
    readout_weight: np.ndarray
    readout_bias: np.ndarray
    population_mean: np.ndarray
    population_var: np.ndarray
    trained_running_mean: np.ndarray
    trained_running_var: np.ndarray

    def accuracy(self, running_mean, running_var) -> np.ndarray:
        """Test accuracy with the given statistics in the BN layer (eval mode).

        Args:
            running_mean, running_var: (D,) or (K, D) for K sets of statistics at once

        Returns:
            a float, or (K,) accuracies
        """
        mean = np.atleast_2d(running_mean)[:, None, :]  # (K, 1, D)
        var = np.atleast_2d(running_var)[:, None, :]
        scale = self.gamma / np.sqrt(var + self.eps)
        shift = self.beta - scale * mean
        # the network itself runs in float32 (as the torch model does): twice as fast
        pre_activation = self.test_z.astype(np.float32)[None] * scale.astype(np.float32) + shift.astype(np.float32)
        # exp overflows to inf for a pre-activation below about -88 (float32): 1 / (1 + inf) = 0,
        # the sigmoid's correct limit, so the overflow warning is silenced, not a problem
        with np.errstate(over="ignore"):
            hidden = 1.0 / (1.0 + np.exp(-pre_activation))  # (K, n_test, D)
        logits = hidden @ self.readout_weight.T.astype(np.float32) + self.readout_bias.astype(np.float32)
        accuracy = (logits.argmax(axis=-1) == self.test_labels).mean(axis=-1)
        return float(accuracy[0]) if np.ndim(running_mean) == 1 else accuracy


@lru_cache(maxsize=4)
def frozen_bn_layer(train_examples: int = 6000, test_examples: int = 500, seed: int = 0,
                    recorded: bool = False) -> FrozenBNLayer:
    """The BN layer of ``trained_bn_mlp()`` (depth 1, 100 units), frozen (cached).

    Args:
        train_examples: how many training images make up the "population" (the first n)
        test_examples:  how many test images the accuracy is measured on (the first n)
        seed:           passed to ``trained_bn_mlp``
        recorded:       take the trained weights from ``recorded_bn_mlp()`` (seed 0 only)
                        instead of training: the same numbers, at once (what the panel uses)

    Returns:
        FrozenBNLayer with float64 arrays (read-only)

    Raises:
        helpers.data.DataFileError: MNIST (or, with ``recorded``, the record) cannot be read.
    """
    import torch

    from helpers.data import load_mnist_head

    if recorded and seed != 0:
        raise ValueError(_("only seed 0 is recorded, got seed {seed}").format(seed=seed))
    model = recorded_bn_mlp() if recorded else trained_bn_mlp(seed=seed)[0]
    # only the images used are read and converted, as mnist_flat() converts them
    data = load_mnist_head(train_examples, test_examples)

    def images(x):
        return torch.from_numpy(x.astype(np.float32) / 255.0).reshape(len(x), -1)

    linear, norm = model.linears[0], model.norms[0]
    with torch.no_grad():
        weight = linear.weight.double()
        train_z = (images(data.x_train[:train_examples]).double() @ weight.T).numpy()
        test_z = (images(data.x_test[:test_examples]).double() @ weight.T).numpy()
    arrays = dict(
        train_z=train_z,
        train_labels=data.y_train[:train_examples].astype(np.int64),
        test_z=test_z,
        test_labels=data.y_test[:test_examples].astype(np.int64),
        gamma=norm.weight.detach().double().numpy().copy(),
        beta=norm.bias.detach().double().numpy().copy(),
        readout_weight=model.output.weight.detach().double().numpy().copy(),
        readout_bias=model.output.bias.detach().double().numpy().copy(),
        population_mean=train_z.mean(axis=0),
        population_var=train_z.var(axis=0),
        trained_running_mean=norm.running_mean.double().numpy().copy(),
        trained_running_var=norm.running_var.double().numpy().copy(),
    )
    for array in arrays.values():
        array.setflags(write=False)
    return FrozenBNLayer(eps=float(norm.eps), **arrays)


# ----------------------------------------------------------------------------------------
# The trained network, recorded in data/ (the panel draws at once instead of training)
# ----------------------------------------------------------------------------------------

#: ``trained_bn_mlp()``'s weights (default settings, seed 0), made by
#: ``python -m tools.record_panel_runs inference_statistics``.
TRAINED_LAYER_FILENAME = "inference_statistics_trained_mlp.npz"
#: Its sha256; ``recorded_bn_mlp`` refuses a file with any other.
TRAINED_LAYER_SHA256 = "bfd420a757ed3016f3695c95e5889b5f8fe43f8aa3670ab76d723fa2624a4e1c"
TRAINED_LAYER_COMMAND = "python -m tools.record_panel_runs inference_statistics"


def record_trained_layer(path=None, jobs: int = 1):
    """Train ``trained_bn_mlp()`` (default settings) and write its state dict, exactly (float32
    weights, the int64 batch count), with the versions it was made with, to an .npz file
    (maintainers only; seconds). ``jobs`` is ignored (one run).

    Returns:
        (path, sha256 of the file written)
    """
    import json
    from pathlib import Path

    from helpers.data import record_path, record_versions, sha256_of

    model, _history = trained_bn_mlp()
    arrays = {name: value.numpy() for name, value in model.state_dict().items()}
    about = dict(what="notebook 04's small BN network, trained_bn_mlp() with its defaults",
                 command=TRAINED_LAYER_COMMAND, torch_threads=1,
                 settings=dict(batch_size=60, steps=400, lr=0.5, hidden=100, depth=1, seed=0),
                 versions=record_versions())
    path = record_path(TRAINED_LAYER_FILENAME) if path is None else Path(path)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, about=np.array(json.dumps(about)), **arrays)
    return path, sha256_of(path)


@lru_cache(maxsize=1)
def _recorded_state(path, verify: bool) -> dict:
    from pathlib import Path

    from helpers.data import DataFileError, find_data_file, sha256_of

    path = find_data_file(TRAINED_LAYER_FILENAME) if path is None else Path(path)
    if not path.is_file():
        raise DataFileError(_("{path} does not exist; it ships with the course in data/.").format(path=path))
    if verify and sha256_of(path) != TRAINED_LAYER_SHA256:
        raise DataFileError(_("{path} is not the recorded network: its sha256 is {sha256}, "
                              "expected {expected}. Get a fresh copy of the course's "
                              "data/ folder, or (maintainers) re-record it with "
                              "`{command}` and update TRAINED_LAYER_SHA256.").format(
            path=path, sha256=sha256_of(path), expected=TRAINED_LAYER_SHA256, command=TRAINED_LAYER_COMMAND))
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files if name != "about"}


def recorded_bn_mlp(path=None, verify: bool = True):
    """``trained_bn_mlp()[0]`` (default settings, seed 0) from its recorded weights
    (``data/inference_statistics_trained_mlp.npz``), without training: a fresh model in eval mode.

    Raises:
        helpers.data.DataFileError: the file is missing or is not the recorded one.
    """
    import torch

    from helpers.models import Figure1MLP

    state = _recorded_state(None if path is None else str(path), verify)
    model = Figure1MLP(batchnorm=True, hidden=100, depth=1, seed=0)
    model.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in state.items()})
    return model.eval()
