"""Notebook 09's computations: batch normalization across processes.

When a mini-batch is split over k processes (data parallelism), each process sees only its
shard. This module holds:

1. **Per-process BN is BN on a smaller batch** (numpy): ``shard_outputs``, ``per_process_gap``
   and its first-order prediction ``predicted_gap``.
2. **The one-pass shortcut** ``one_pass_moments`` (count, sum, sum of squares), the merge's
   bad twin; the merge itself is the library's ``helpers.parallel_variance``.
3. **Processes**: ``run_processes`` starts k CPU processes (``torch.multiprocessing``,
   spawn), joins them in a gloo process group on 127.0.0.1 with a hard timeout, runs a
   worker function in each and returns what each returned. The workers' own output goes to
   a log file (shown only when a worker fails), and the processes are always stopped, also
   when the caller is interrupted.
4. **The layer**: ``SyncBatchNormFunction`` (a ``torch.autograd.Function``: the forward
   all-gathers every process's (count, mean, M2) and merges them; the backward all-reduces
   the per-channel sums of dy and dy * x_hat) and the module ``SyncBatchNorm``.
5. **Worker functions**, module-level so that spawned processes can import them:
   ``first_steps_worker``, ``equivalence_worker``, ``training_worker``,
   ``allreduce_timing_worker``, ``experiments_worker`` (the last three in one group),
   ``cuda_comparison_worker``; and their single-process judges ``reference_run`` and
   ``reference_training`` (torch's own BN on the concatenated batch), with
   ``compare_with_reference``; ``quote_source`` prints lines of torch's own source.
6. **Costs**: ``bn_widths``, the ResNet-50 layout (``resnet50_bn_widths``,
   ``resnet50_parameter_count``), ``sync_numbers`` and ``ring_bytes_sent``.

Importing this module starts nothing and changes no global state.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import math
import multiprocessing.connection
import os
import pickle
import re
import socket
import sys
import tempfile
import textwrap
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from helpers.bn import batchnorm_forward

# translate(N_("...")) rather than _("..."): SyncBatchNormFunction, whose source the notebook prints,
# binds ``_`` in a comprehension, which a module that imports ``_`` must not do
from helpers.i18n import N_, language, set_language
from helpers.i18n import _ as translate
from helpers.models import SmallCNN
from helpers.parallel_variance import Moments, merge_all

__all__ = [
    "RESNET50_STAGES",
    "SyncBatchNorm",
    "SyncBatchNormFunction",
    "WorkerFailed",
    "allreduce_timing_worker",
    "bn_widths",
    "compare_with_reference",
    "convert_to_sync",
    "cuda_comparison_worker",
    "equivalence_case",
    "equivalence_worker",
    "experiments_worker",
    "free_port",
    "first_steps_worker",
    "make_batches",
    "one_pass_moments",
    "per_process_gap",
    "predicted_gap",
    "quote_source",
    "reference_run",
    "reference_training",
    "resnet50_bn_widths",
    "resnet50_parameter_count",
    "ring_bytes_sent",
    "run_processes",
    "shard_outputs",
    "show_source",
    "sync_numbers",
    "torch_sync_batchnorm_refusal",
    "training_worker",
]

# ----------------------------------------------------------------------------------------
# 1. Per-process BN is BN on a smaller batch (numpy)
# ----------------------------------------------------------------------------------------


def shard_outputs(x, sizes, eps=1e-5):
    """What k processes compute when each normalizes its own shard with plain BN.

    x (N, D) is the global batch, ``sizes`` the shard sizes (summing to N, each >= 2).
    Returns (N, D): every row normalized with its own shard's mean and biased variance
    (gamma = 1, beta = 0), in the order of x.
    """
    x = np.asarray(x, dtype=float)
    if sum(sizes) != len(x):
        raise ValueError(translate(N_("the shard sizes {sizes} do not add up to the batch of {size}")).format(
            sizes=list(sizes), size=len(x)))
    if min(sizes) < 2:
        raise ValueError(translate(N_("every shard needs at least 2 examples to normalize on its own, "
                                      "got {sizes}")).format(sizes=list(sizes)))
    ones, zeros = np.ones(x.shape[1]), np.zeros(x.shape[1])
    edges = np.cumsum([0, *sizes])
    return np.concatenate([batchnorm_forward(x[a:b], ones, zeros, eps)[0]
                           for a, b in zip(edges[:-1], edges[1:])])


def per_process_gap(x, per_process: int, eps=1e-5) -> dict:
    """How far per-process BN is from BN on the whole batch x (N, D), N a multiple of
    ``per_process``: the RMS and the largest absolute difference of the normalized values."""
    x = np.asarray(x, dtype=float)
    if len(x) % per_process:
        raise ValueError(translate(N_("per_process={per_process} must divide the batch of {size}")).format(
            per_process=per_process, size=len(x)))
    whole = batchnorm_forward(x, np.ones(x.shape[1]), np.zeros(x.shape[1]), eps)[0]
    local = shard_outputs(x, [per_process] * (len(x) // per_process), eps)
    difference = local - whole
    return {"rms": float(np.sqrt(np.mean(difference ** 2))), "max": float(np.abs(difference).max())}


def predicted_gap(per_process, total):
    """First-order RMS gap between per-process and whole-batch BN for Gaussian data:
    sqrt(1.5 (1/n - 1/N)). The shard mean is off by sqrt(1/n - 1/N) standard deviations
    (variance 1/n - 1/N: the 1); the relative error of the shard standard deviation has half
    that variance, (1/n - 1/N) / 2, and moves a normalized value x_hat by x_hat times it
    (E[x_hat^2] / 2 = the 0.5)."""
    per_process = np.asarray(per_process, dtype=float)
    return np.sqrt(1.5 * (1.0 / per_process - 1.0 / total))


# ----------------------------------------------------------------------------------------
# 2. The one-pass shortcut
# ----------------------------------------------------------------------------------------


def one_pass_moments(x, axis=0):
    """(count, sum, sum of squares) over ``axis``, in x's own dtype: what a process would
    all-reduce in the shortcut. The variance from them is
    sum_sq / count - (sum / count)**2, which cancels when the mean is large."""
    x = np.asarray(x)
    count = x.shape[axis] if np.isscalar(axis) else int(np.prod([x.shape[a] for a in axis]))
    return count, x.sum(axis=axis, dtype=x.dtype), (x * x).sum(axis=axis, dtype=x.dtype)


# ----------------------------------------------------------------------------------------
# 3. Processes
# ----------------------------------------------------------------------------------------


class WorkerFailed(RuntimeError):
    """A worker process raised, was killed, or did not finish in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the system picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _loopback_interface() -> str | None:
    """The name of the loopback network interface ("lo" on Linux, "lo0" on macOS), if any."""
    try:
        names = {name for _, name in socket.if_nameindex()}
    except (AttributeError, OSError):
        return None
    return next((name for name in ("lo", "lo0") if name in names), None)


@contextlib.contextmanager
def _child_output_to(path: Path):
    """While the block runs, file descriptors 1 and 2 (stdout, stderr) point at ``path``.

    A process started inside the block inherits them, so everything it prints from its first
    instruction on (warnings of the libraries it imports included) lands in the file instead
    of the notebook cell. The parent's own descriptors are restored afterwards."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with open(path, "ab") as log:
            for fd in saved:
                os.dup2(log.fileno(), fd)
            yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def _die_with_parent(parent_pid: int) -> None:
    """On Linux, ask the kernel to end this process when its parent ends (a notebook kernel
    that is killed or restarted then leaves no workers behind)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes
            import signal

            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent ended before the request took effect
        os._exit(1)


def _bootstrap(rank, world_size, port, folder, worker, args, group_timeout, parent_pid, language_name="en"):
    """What each spawned process runs: join the gloo group, run ``worker``, leave the group,
    write the result (or the traceback) into ``folder``. The worker's sentences are in the
    caller's language, ``language_name``."""
    _die_with_parent(parent_pid)
    if language_name != "en":
        set_language(language_name)
    loopback = _loopback_interface()
    if loopback and "GLOO_SOCKET_IFNAME" not in os.environ:
        os.environ["GLOO_SOCKET_IFNAME"] = loopback  # gloo's own sockets on loopback too
    torch.set_num_threads(1)  # k processes share the machine's cores
    folder = Path(folder)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world_size,
                                timeout=datetime.timedelta(seconds=group_timeout))
        try:
            result = worker(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        partial = folder / f"rank{rank}.pkl.partial"
        partial.write_bytes(pickle.dumps(result))
        partial.replace(folder / f"rank{rank}.pkl")
        exit_code = 0
    except BaseException:
        (folder / f"rank{rank}.error").write_text(traceback.format_exc(), encoding="utf-8")
        exit_code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(exit_code)  # skip the interpreter's teardown of torch: about a second per process


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else translate(N_("(no message)"))


def _failure_report(processes, folder: Path) -> str:
    """Which workers failed and why: each failed rank's last error line, then the first
    traceback and the end of the workers' output."""
    lines, first_traceback = [], None
    for rank, process in enumerate(processes):
        error = folder / f"rank{rank}.error"
        if error.is_file():
            text = error.read_text(encoding="utf-8")
            first_traceback = first_traceback or (rank, text)
            lines.append(translate(N_("rank {rank}: {error}")).format(rank=rank, error=_last_line(text)))
        elif process.exitcode is not None and process.exitcode < 0:
            lines.append(translate(N_("rank {rank}: killed by signal {signal}")).format(
                rank=rank, signal=-process.exitcode))
        elif process.exitcode not in (None, 0):
            lines.append(translate(N_("rank {rank}: exited with code {code}")).format(
                rank=rank, code=process.exitcode))
    if first_traceback:
        lines.append(translate(N_("traceback of rank {rank}:\n{traceback}")).format(
            rank=first_traceback[0], traceback=first_traceback[1].rstrip()))
    log = folder / "output.log"
    if log.is_file() and log.stat().st_size:
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        lines.append(translate(N_("the workers' output ends with:\n{tail}")).format(tail=tail.rstrip()))
    return "\n".join(lines)


def _stop(processes) -> None:
    """Terminate whatever still runs, then kill what does not stop; always join."""
    interrupted = False
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        try:
            process.join(timeout=5)
        except KeyboardInterrupt:  # a second interrupt: stop waiting politely
            interrupted = True
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
    if interrupted:
        raise KeyboardInterrupt


def _wait(processes, timeout: float, folder: Path) -> None:
    """Return when every process has exited with 0; raise WorkerFailed as soon as one fails,
    or when ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if any(process.exitcode not in (None, 0) for process in processes):
            raise WorkerFailed(_failure_report(processes, folder))
        running = [process for process in processes if process.exitcode is None]
        if not running:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WorkerFailed(translate(N_("the workers did not finish within {timeout:.0f} s and "
                                            "were stopped.\n{report}")).format(
                timeout=timeout, report=_failure_report(processes, folder)))
        multiprocessing.connection.wait([process.sentinel for process in running],
                                        timeout=min(remaining, 1.0))


def _port_was_taken(report: str) -> bool:
    return "EADDRINUSE" in report or "address already in use" in report.lower()


def run_processes(worker, world_size=2, args=(), *, timeout=120.0, group_timeout=30.0):
    """Run ``worker(rank, world_size, *args)`` in ``world_size`` fresh CPU processes that
    form one gloo process group, and return the list of what each rank returned.

    - The processes are started with ``torch.multiprocessing``'s "spawn" method, so
      ``worker`` must be a function defined at the top level of an importable module.
    - The group meets at ``tcp://127.0.0.1:<a free port>`` (gloo's sockets on the loopback
      interface too); ``group_timeout`` seconds is the hard limit of every collective.
    - ``timeout`` seconds is the hard limit of the whole run, start-up included.
    - Whatever the workers print goes to a log file; a failure raises ``WorkerFailed``
      with each failed rank's error, the first traceback and the end of the log.
    - The processes are always joined or, if still running (an error elsewhere, a timeout,
      an interrupted cell), terminated; the temporary folder is removed.
    """
    if not callable(worker) or "<" in getattr(worker, "__qualname__", "<"):
        raise ValueError(translate(N_("worker must be a function defined at the top level of a module "
                                      "(spawned processes import it by name), got {worker!r}")).format(
            worker=worker))
    if int(world_size) != world_size or world_size < 1:
        raise ValueError(translate(N_("world_size must be a positive integer, got {world_size!r}")).format(
            world_size=world_size))
    if timeout <= 0 or group_timeout <= 0:
        raise ValueError(translate(N_("timeouts must be positive, got timeout={timeout}, "
                                      "group_timeout={group_timeout}")).format(
            timeout=timeout, group_timeout=group_timeout))
    for attempt in range(3):
        try:
            return _run_once(worker, int(world_size), tuple(args), timeout, group_timeout)
        except WorkerFailed as failure:
            if attempt == 2 or not _port_was_taken(str(failure)):
                raise
    raise AssertionError("unreachable")


def _run_once(worker, world_size, args, timeout, group_timeout):
    context = torch.multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bn-across-processes-") as name:
        folder = Path(name)
        port = free_port()
        processes = []
        try:
            with _child_output_to(folder / "output.log"):
                for rank in range(world_size):
                    process = context.Process(
                        target=_bootstrap, name=f"bn-worker-{rank}", daemon=True,
                        args=(rank, world_size, port, str(folder), worker, args, group_timeout,
                              os.getpid(), language()))
                    process.start()
                    processes.append(process)
            _wait(processes, timeout, folder)
            return [pickle.loads((folder / f"rank{rank}.pkl").read_bytes())
                    for rank in range(world_size)]
        finally:
            _stop(processes)


# ----------------------------------------------------------------------------------------
# 4. The synchronized BN layer
# ----------------------------------------------------------------------------------------


def _channel_axes(x):
    """The axes BN averages over: all but the channel axis 1."""
    return [0, *range(2, x.dim())]


def _per_channel(v, x):
    """A (C,) tensor shaped to broadcast against x (N, C, ...)."""
    return v.reshape(1, -1, *([1] * (x.dim() - 2)))


class SyncBatchNormFunction(torch.autograd.Function):
    """Batch normalization whose statistics come from every process of a group.

    forward(x, weight, bias, running_mean, running_var, eps, momentum, group):
        x (n_local, C) or (n_local, C, H, W): this process's shard. Every process sends
        2C + 1 numbers, its (count, mean, M2); all receive all of them (all_gather) and
        merge them with the parallel variance formula into the global mean and biased
        variance, normalize with those, and update the running statistics (in place)
        with the global mean and the unbiased variance M2 / (N - 1), N the global count.
    backward(dy):
        dx = gamma / sqrt(var + eps) * (dy - sum(dy) / N - x_hat * sum(dy * x_hat) / N),
        with both sums over the GLOBAL batch: one all_reduce of 2C numbers. The gradients
        of gamma and beta are this process's sums, sum(dy * x_hat) and sum(dy); summed over
        the processes (the gradient all-reduce of data-parallel training does it) they are
        the gradients of BN on the whole batch.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group):
        axes, channels = _channel_axes(x), x.shape[1]
        count = x.numel() // channels
        if count:
            mean = x.mean(dim=axes)
            m2 = ((x - _per_channel(mean, x)) ** 2).sum(dim=axes)
        else:  # an empty shard still takes part: it contributes count 0
            mean = m2 = x.new_zeros(channels)
        local = torch.cat([x.new_tensor([float(count)]), mean, m2])  # 2C + 1 numbers
        gathered = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
        dist.all_gather(gathered, local, group=group)
        total = merge_all(Moments(int(g[0].item()), g[1:channels + 1], g[channels + 1:])
                          for g in gathered)
        if total.count < 2:
            raise ValueError("Expected more than 1 value per channel in the whole group when "
                             f"training, got {total.count}")
        var = total.m2 / total.count
        invstd = torch.rsqrt(var + eps)
        x_hat = (x - _per_channel(total.mean, x)) * _per_channel(invstd, x)
        if running_mean is not None:
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(momentum * total.mean)
                running_var.mul_(1 - momentum).add_(momentum * total.m2 / (total.count - 1))
        ctx.save_for_backward(x_hat, invstd, weight)
        ctx.total_count, ctx.group = total.count, group
        return x_hat * _per_channel(weight, x) + _per_channel(bias, x)

    @staticmethod
    def backward(ctx, dy):
        x_hat, invstd, weight = ctx.saved_tensors
        axes, channels = _channel_axes(dy), dy.shape[1]
        sum_dy = dy.sum(dim=axes)                # this process's part: the gradient of beta
        sum_dy_x_hat = (dy * x_hat).sum(dim=axes)  # this process's part: the gradient of gamma
        both = torch.cat([sum_dy, sum_dy_x_hat])  # 2C numbers
        dist.all_reduce(both, op=dist.ReduceOp.SUM, group=ctx.group)
        global_dy, global_dy_x_hat = both[:channels], both[channels:]
        n = ctx.total_count
        dx = _per_channel(weight * invstd, dy) * (
            dy - _per_channel(global_dy / n, dy) - x_hat * _per_channel(global_dy_x_hat / n, dy))
        return dx, sum_dy_x_hat, sum_dy, None, None, None, None, None


class SyncBatchNorm(nn.Module):
    """A BN layer for (N, C) or (N, C, H, W) inputs whose training-mode statistics are those of
    the whole group (``SyncBatchNormFunction``). Outside a process group (or in a group of
    one), and in eval mode, it is plain BN: eval mode uses the running statistics, which are
    the same on every process, and needs no communication.

    Attributes as torch's BN: weight, bias, running_mean, running_var, num_batches_tracked.
    momentum None means a cumulative average, as in torch.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, group=None, dtype=None):
        super().__init__()
        if num_features < 1 or eps <= 0:
            raise ValueError(translate(N_("need num_features >= 1 and eps > 0, got {num_features}, "
                                          "{eps}")).format(num_features=num_features, eps=eps))
        self.num_features, self.eps, self.momentum, self.group = num_features, eps, momentum, group
        self.weight = nn.Parameter(torch.ones(num_features, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", torch.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", torch.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(translate(N_("expected (N, {channels}, ...) input, got {shape}")).format(
                channels=self.num_features, shape=tuple(x.shape)))
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        self.num_batches_tracked.add_(1)
        momentum = (1.0 / self.num_batches_tracked.item() if self.momentum is None
                    else self.momentum)
        synchronized = dist.is_available() and dist.is_initialized() and \
            dist.get_world_size(self.group) > 1
        if not synchronized:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                True, momentum, self.eps)
        return SyncBatchNormFunction.apply(x, self.weight, self.bias, self.running_mean,
                                           self.running_var, self.eps, momentum, self.group)


def convert_to_sync(module: nn.Module, group=None) -> nn.Module:
    """``module`` with every BatchNorm1d/2d replaced by a ``SyncBatchNorm`` holding the same
    parameters and buffers (like ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        layer = SyncBatchNorm(module.num_features, module.eps, module.momentum, group,
                              dtype=module.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(module.weight)
            layer.bias.copy_(module.bias)
            layer.running_mean.copy_(module.running_mean)
            layer.running_var.copy_(module.running_var)
            layer.num_batches_tracked.copy_(module.num_batches_tracked)
        layer.train(module.training)
        return layer
    for name, child in module.named_children():
        setattr(module, name, convert_to_sync(child, group))
    return module


# ----------------------------------------------------------------------------------------
# 5. Worker functions (run inside run_processes) and their single-process judges
# ----------------------------------------------------------------------------------------


def equivalence_case(shape=(64, 6), shards=(23, 41), steps=3, seed=0, momentum=0.1, eps=1e-5):
    """The settings of one equivalence experiment: ``steps`` training-mode steps of a BN
    layer on global batches of ``shape`` (N, C) or (N, C, H, W), N = sum(shards), split into
    ``shards`` (one per process)."""
    if sum(shards) != shape[0]:
        raise ValueError(translate(N_("the shards {shards} must add up to the batch size {size}")).format(
            shards=shards, size=shape[0]))
    return dict(shape=tuple(shape), shards=tuple(shards), steps=int(steps), seed=int(seed),
                momentum=float(momentum), eps=float(eps))


def make_batches(case):
    """The global batches of a case, in float64: a list of (x, dy) per step, and the initial
    (gamma, beta). The same on every process (seeded), so each can cut its shard."""
    generator = torch.Generator().manual_seed(case["seed"])
    channels = case["shape"][1]
    scale = torch.linspace(0.5, 3.0, channels, dtype=torch.float64)
    offset = torch.linspace(-4.0, 6.0, channels, dtype=torch.float64)
    gamma = 1.0 + 0.5 * torch.rand(channels, generator=generator, dtype=torch.float64)
    beta = torch.randn(channels, generator=generator, dtype=torch.float64)
    batches = []
    for _step in range(case["steps"]):
        x = torch.randn(case["shape"], generator=generator, dtype=torch.float64)
        x = x * _per_channel(scale, x) + _per_channel(offset, x)
        dy = torch.randn(case["shape"], generator=generator, dtype=torch.float64)
        batches.append((x, dy))
    return batches, (gamma, beta)


def _bn_layer(channels, dim, momentum, eps):
    kind = nn.BatchNorm1d if dim == 2 else nn.BatchNorm2d
    return kind(channels, eps=eps, momentum=momentum, dtype=torch.float64)


def _run_steps(layer, batches, rows, gamma, beta, device="cpu"):
    """Training-mode steps of ``layer`` on rows ``rows`` of each batch: the outputs, the
    gradients (of sum(y * dy)) and the running statistics after each step, as numpy arrays."""
    layer.to(device)
    with torch.no_grad():
        layer.weight.copy_(gamma)
        layer.bias.copy_(beta)
    record = {name: [] for name in ("y", "dx", "dgamma", "dbeta", "running_mean", "running_var")}
    for x, dy in batches:
        shard = x[rows].to(device).requires_grad_(True)
        layer.zero_grad()
        y = layer(shard)
        (y * dy[rows].to(device)).sum().backward()
        for name, value in (("y", y), ("dx", shard.grad), ("dgamma", layer.weight.grad),
                            ("dbeta", layer.bias.grad), ("running_mean", layer.running_mean),
                            ("running_var", layer.running_var)):
            record[name].append(value.detach().cpu().clone().numpy())
    return {name: np.stack(values) for name, values in record.items()}


def _rows(shards, rank):
    edges = np.cumsum([0, *shards])
    return slice(int(edges[rank]), int(edges[rank + 1]))


def torch_sync_batchnorm_refusal(channels=3):
    """Inside a process group of two or more CPU processes: what ``torch.nn.SyncBatchNorm``
    does with a CPU tensor in training mode. Returns the error message (or None)."""
    layer = nn.SyncBatchNorm(channels)
    try:
        layer(torch.randn(4, channels))
    except ValueError as error:
        return f"{type(error).__name__}: {error}"
    return None


def equivalence_worker(rank, world_size, cases):
    """One process's part of equivalence experiments (a list of ``equivalence_case``): for
    each, the same steps with our ``SyncBatchNorm`` and with plain per-process BN
    (``nn.BatchNorm1d/2d`` on the shard), and what ``torch.nn.SyncBatchNorm`` says on CPU.
    Returns one dict of numpy arrays per case."""
    results = []
    for case in cases:
        if len(case["shards"]) != world_size:
            raise ValueError(translate(N_("the case has {shards} shards for {world_size} processes")).format(
                shards=len(case['shards']), world_size=world_size))
        batches, (gamma, beta) = make_batches(case)
        channels, dim = case["shape"][1], len(case["shape"])
        rows = _rows(case["shards"], rank)
        sync = SyncBatchNorm(channels, case["eps"], case["momentum"], dtype=torch.float64)
        result = {"rank": rank, "rows": (rows.start, rows.stop),
                  "sync": _run_steps(sync, batches, rows, gamma, beta)}
        try:
            layer = _bn_layer(channels, dim, case["momentum"], case["eps"])
            result["local"] = _run_steps(layer, batches, rows, gamma, beta)
        except ValueError as error:  # a shard of one example cannot be normalized on its own
            result["local"] = f"{type(error).__name__}: {error}"
        result["torch_sync_bn_on_cpu"] = torch_sync_batchnorm_refusal()
        results.append(result)
    return results


def cuda_comparison_worker(rank, world_size, case):
    """With CUDA: the same steps with our SyncBatchNorm and with ``torch.nn.SyncBatchNorm``,
    both on this process's GPU (rank modulo the GPUs there are; gloo carries CUDA tensors).
    Returns {"ours": record, "torch": record}."""
    device = torch.device("cuda", rank % torch.cuda.device_count())
    torch.cuda.set_device(device)
    batches, (gamma, beta) = make_batches(case)
    channels, rows = case["shape"][1], _rows(case["shards"], rank)
    ours = SyncBatchNorm(channels, case["eps"], case["momentum"], dtype=torch.float64)
    theirs = nn.SyncBatchNorm(channels, case["eps"], case["momentum"], dtype=torch.float64)
    return {"ours": _run_steps(ours, batches, rows, gamma, beta, device),
            "torch": _run_steps(theirs, batches, rows, gamma, beta, device)}


def reference_run(case):
    """The judge: torch's own BN (``nn.BatchNorm1d/2d``, float64) on the concatenated
    batches, in one process, in the same steps."""
    batches, (gamma, beta) = make_batches(case)
    layer = _bn_layer(case["shape"][1], len(case["shape"]), case["momentum"], case["eps"])
    return _run_steps(layer, batches, slice(None), gamma, beta)


def compare_with_reference(results, reference, kinds=("sync", "local")) -> dict:
    """The largest absolute differences between what the processes computed and the
    single-process reference, for each record kind in ``kinds`` (each process's result holds
    one record per kind; a string instead of a record is an error message, passed on):
    outputs and dx put back in batch order; dgamma and dbeta summed over the processes;
    the running statistics of every process."""
    differences = {}
    for kind in kinds:
        records = [result[kind] for result in results]
        if any(isinstance(record, str) for record in records):
            differences[kind] = next(record for record in records if isinstance(record, str))
            continue
        row = {name: float(np.abs(np.concatenate([r[name] for r in records], axis=1)
                                  - reference[name]).max()) for name in ("y", "dx")}
        for name in ("dgamma", "dbeta"):
            row[name] = float(np.abs(sum(r[name] for r in records) - reference[name]).max())
        for name in ("running_mean", "running_var"):
            row[name] = max(float(np.abs(r[name] - reference[name]).max()) for r in records)
        differences[kind] = row
    return differences


# --- data-parallel training steps -------------------------------------------------------------


def _training_data(seed, total, steps):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(steps, total, 1, 28, 28, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 10, (steps, total), generator=generator)
    return images, labels


def _sgd_steps(model, images, labels, rows, lr, loss_scale, world_size):
    """Plain SGD steps; with world_size > 1 the gradients of all processes are summed with
    one all_reduce (what DistributedDataParallel does, in buckets). Returns the time of each
    step and of its gradient all-reduce."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    step_seconds, reduce_seconds = [], []
    for x, y in zip(images, labels):
        started = time.perf_counter()
        model.zero_grad()
        loss = F.cross_entropy(model(x[rows]), y[rows], reduction="sum") * loss_scale
        loss.backward()
        reduce_started = time.perf_counter()
        if world_size > 1:
            flat = torch.cat([p.grad.reshape(-1) for p in parameters])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            for p, g in zip(parameters, flat.split([p.numel() for p in parameters])):
                p.grad.copy_(g.view_as(p))
        reduce_seconds.append(time.perf_counter() - reduce_started)
        with torch.no_grad():
            for p in parameters:
                p -= lr * p.grad
        step_seconds.append(time.perf_counter() - started)
    return step_seconds, reduce_seconds


def _state(model):
    return {name: value.detach().clone().numpy() for name, value in model.state_dict().items()}


def training_worker(rank, world_size, per_process=8, steps=4, lr=0.1, seed=0):
    """A few data-parallel SGD steps of the course's SmallCNN (float64) on shards of
    ``per_process`` images, twice: with per-process BN and with our SyncBatchNorm.

    The loss of each process is its share of the mean over the GLOBAL batch (sum of its
    examples' losses / global count), and the gradients are summed over processes, so the
    step is that of the global batch. Returns the final parameters and buffers, and the
    measured seconds per step and per gradient all-reduce."""
    total = per_process * world_size
    images, labels = _training_data(seed, total, steps)
    rows = slice(rank * per_process, (rank + 1) * per_process)
    result = {}
    for kind in ("local", "sync"):
        model = SmallCNN(norm="batch", seed=seed).double()
        if kind == "sync":
            model = convert_to_sync(model)
        step_seconds, reduce_seconds = _sgd_steps(model, images, labels, rows, lr, 1.0 / total,
                                                  world_size)
        result[kind] = {"state": _state(model), "step_seconds": step_seconds,
                        "reduce_seconds": reduce_seconds}
    return result


def reference_training(world_size, per_process=8, steps=4, lr=0.1, seed=0):
    """The same SGD steps in one process on the whole batch (torch's BatchNorm2d)."""
    total = per_process * world_size
    images, labels = _training_data(seed, total, steps)
    model = SmallCNN(norm="batch", seed=seed).double()
    _sgd_steps(model, images, labels, slice(None), lr, 1.0 / total, 1)
    return _state(model)


# --- timing and timeouts ----------------------------------------------------------------------


def allreduce_timing_worker(rank, world_size, sizes, repeats=20):
    """Median seconds of one all_reduce (float32, SUM) of each size in ``sizes``, after a
    barrier, measured on each process: {size: seconds}. Sizes above a million numbers are
    repeated fewer times (at least 3)."""
    medians = {}
    for size in sizes:
        tensor = torch.ones(int(size))
        dist.all_reduce(tensor)  # warm-up: first use of this size
        seconds = []
        for _repeat in range(max(3, min(repeats, 20_000_000 // int(size)))):  # fewer for the largest
            dist.barrier()
            started = time.perf_counter()
            dist.all_reduce(tensor)
            seconds.append(time.perf_counter() - started)
        medians[int(size)] = float(np.median(seconds))
    return medians


def _gloo_message(error: BaseException) -> str:
    """The first line of a collective's error, without gloo's source-file prefix and the
    peer's address (which changes from run to run)."""
    message = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().splitlines()[0])
    message = re.sub(r"\s*\[[0-9.:]+\]:\d+", "", message).split(". ")[0].rstrip(".")
    return f"{type(error).__name__}: {message}"


def first_steps_worker(rank, world_size, patience=5.0, long_patience=60.0):
    """The collectives synchronized BN uses, on tiny tensors, and what a timeout does.

    1. all_reduce: every rank contributes rank + 1; all receive the sum.
    2. all_gather: every rank contributes (rank, 10 * rank); all receive every rank's pair.
    3. a peer that is alive but never joins: in a subgroup whose timeout is ``patience``
       seconds, every rank but the last starts an all_reduce; the last one waits in a
       barrier of the main group instead (mismatched collectives, the classic deadlock),
       which the others join once their all_reduce has failed. ``patience`` must be
       shorter than the main group's timeout, or the barrier fails first.
    4. a peer that leaves: in a subgroup whose timeout is ``long_patience`` seconds, every
       rank but the last starts an all_reduce; the last one returns, and its process ends.
    Returns what this rank saw: {"all_reduce", "all_gather", "stalled", "exited"}, the last
    two as sentences, and "waited": the seconds the all_reduces of 3 and 4 took to fail (None
    on the last rank).
    """
    total = torch.tensor([rank + 1.0])
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    pairs = [torch.empty(2) for _peer in range(world_size)]
    dist.all_gather(pairs, torch.tensor([float(rank), 10.0 * rank]))
    seen = {"all_reduce": total.item(), "all_gather": [pair.tolist() for pair in pairs],
            "waited": None}
    last = rank == world_size - 1

    impatient = dist.new_group(timeout=datetime.timedelta(seconds=patience))
    started = time.perf_counter()
    if last:
        dist.barrier()  # alive, but waiting for something else than the all_reduce
        seen["stalled"] = translate(N_("rank {rank}: alive, in a barrier of the main group instead, "
                                       "released after {seconds:.1f} s")).format(
            rank=rank, seconds=time.perf_counter() - started)
    else:
        try:
            dist.all_reduce(torch.ones(1), group=impatient)
            outcome = translate(N_("the all-reduce completed"))
        except RuntimeError as error:
            outcome = _gloo_message(error)
        stalled = time.perf_counter() - started
        seen["stalled"] = translate(N_("rank {rank}: after {seconds:.1f} s: {outcome}")).format(
            rank=rank, seconds=stalled, outcome=outcome)
        dist.barrier()

    patient = dist.new_group(timeout=datetime.timedelta(seconds=long_patience))
    started = time.perf_counter()
    if last:
        seen["exited"] = translate(N_("rank {rank}: returned, and its process ended")).format(rank=rank)
        return seen
    try:
        dist.all_reduce(torch.ones(1), group=patient)
        outcome = translate(N_("the all-reduce completed"))
    except RuntimeError as error:
        outcome = _gloo_message(error)
    exited = time.perf_counter() - started
    seen["exited"] = translate(N_("rank {rank}: after {seconds:.1f} s: {outcome}")).format(
        rank=rank, seconds=exited, outcome=outcome)
    seen["waited"] = (stalled, exited)
    return seen


def experiments_worker(rank, world_size, cases, sizes, repeats=20, per_process=8, steps=4):
    """Everything notebook 09 measures in one process group (one start-up for all of it):
    {"equivalence": equivalence_worker(cases), "training": training_worker(per_process, steps),
    "allreduce": allreduce_timing_worker(sizes, repeats)}."""
    return {"equivalence": equivalence_worker(rank, world_size, cases),
            "training": training_worker(rank, world_size, per_process, steps),
            "allreduce": allreduce_timing_worker(rank, world_size, sizes, repeats)}


def show_source(function, start, stop, extra=0) -> str:
    """``quote_source`` as text to print: "file, from line n (torch version):" and the lines,
    or a sentence saying that this torch has no such lines."""
    where = quote_source(function, start, stop, extra)
    if where is None:
        return translate(N_("(torch {version} has no lines from {start!r} to {stop!r} in "
                            "{function}: its source differs from torch 2.13's)")).format(
            version=torch.__version__, start=start, stop=stop, function=function.__qualname__)
    name, line, text = where
    return translate(N_("{name}, from line {line} (torch {version}):\n{text}")).format(
        name=name, line=line, version=torch.__version__, text=text)


def quote_source(function, start, stop, extra=0):
    """The lines of ``function``'s source from the first one containing ``start`` to the next
    one containing ``stop`` (and ``extra`` more): (file inside the torch package, number of
    the first line, text). None if the markers are not found (another torch version)."""
    lines, first = inspect.getsourcelines(function)
    begin = next((i for i, line in enumerate(lines) if start in line), None)
    if begin is None:
        return None
    end = next((i for i in range(begin, len(lines)) if stop in lines[i]), None)
    if end is None:
        return None
    path = Path(inspect.getsourcefile(function)).resolve()
    root = Path(torch.__file__).resolve().parent.parent
    name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    return name, first + begin, textwrap.dedent("".join(lines[begin:end + 1 + extra]))


# ----------------------------------------------------------------------------------------
# 6. Costs
# ----------------------------------------------------------------------------------------

#: torchvision's resnet50 (torchvision/models/resnet.py: ``ResNet(Bottleneck, [3, 4, 6, 3])``,
#: ``Bottleneck.expansion = 4``): per stage, the bottleneck width and the number of blocks.
RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


def _resnet50_layers():
    """(kind, shape) of every layer with parameters of torchvision's resnet50, in order:
    ("conv", (out, in, k, k)), ("bn", (C,)), ("fc", (out, in))."""
    layers = [("conv", (64, 3, 7, 7)), ("bn", (64,))]  # the stem
    inplanes = 64
    for planes, blocks in RESNET50_STAGES:
        for block in range(blocks):
            layers += [("conv", (planes, inplanes, 1, 1)), ("bn", (planes,)),
                       ("conv", (planes, planes, 3, 3)), ("bn", (planes,)),
                       ("conv", (4 * planes, planes, 1, 1)), ("bn", (4 * planes,))]
            if block == 0:  # the downsample branch: a 1x1 conv and a BN
                layers += [("conv", (4 * planes, inplanes, 1, 1)), ("bn", (4 * planes,))]
            inplanes = 4 * planes
    layers.append(("fc", (1000, 2048)))
    return layers


def resnet50_bn_widths() -> list[int]:
    """The channels of each of resnet50's BN layers, in order (53 layers)."""
    return [shape[0] for kind, shape in _resnet50_layers() if kind == "bn"]


def resnet50_parameter_count() -> int:
    """resnet50's trainable parameters: convolutions (no bias), BN (gamma and beta), the
    final fully connected layer (with bias)."""
    total = 0
    for kind, shape in _resnet50_layers():
        total += math.prod(shape) * (2 if kind == "bn" else 1) + (shape[0] if kind == "fc" else 0)
    return total


def bn_widths(model: nn.Module) -> list[int]:
    """The channels of each BN layer of a torch model (torch's and ours), in order."""
    return [module.num_features for module in model.modules()
            if isinstance(module, (nn.modules.batchnorm._BatchNorm, SyncBatchNorm))]


def sync_numbers(widths) -> dict:
    """Numbers each process puts into the collectives of synchronized BN per training step,
    for BN layers of the given widths: forward (count, mean, M2) = 2C + 1 per layer,
    backward (sum dy, sum dy * x_hat) = 2C per layer, and the number of collectives."""
    widths = [int(width) for width in widths]
    return {"forward": sum(2 * c + 1 for c in widths), "backward": sum(2 * c for c in widths),
            "collectives": 2 * len(widths)}


def ring_bytes_sent(numbers, world_size, operation="all_reduce", bytes_per_number=4):
    """Bytes each process sends in a ring algorithm: all_reduce of S numbers sends
    2 (k - 1) / k * S numbers (reduce-scatter, then all-gather); all_gather of S numbers per
    process sends (k - 1) * S."""
    k = world_size
    if operation == "all_reduce":
        return 2 * (k - 1) / k * numbers * bytes_per_number
    if operation == "all_gather":
        return (k - 1) * numbers * bytes_per_number
    raise ValueError(translate(N_("operation must be 'all_reduce' or 'all_gather', got {operation!r}")).format(
        operation=operation))
