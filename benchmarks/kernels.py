"""Our numpy BN kernels against torch's, on the CPU, with the same thread count.

For each dtype and shape: forward (ours vs ``F.batch_norm``), node-by-node and compact backward
(ours vs autograd's backward through ``F.batch_norm``), timed interleaved, median of repeats.
numpy's element-wise work runs on one thread, so torch is held to one thread too.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import Result, at_least, at_most, interleaved_medians
from helpers import bn

SHAPES = {"256x1024": (256, 1024), "4096x256": (4096, 256), "conv 64x64x32x32": (64, 64, 32, 32)}
TINY_SHAPES = {"64x32": (64, 32), "conv 4x3x5x5": (4, 3, 5, 5)}


def _ours(x, gamma, beta, dout):
    if x.ndim == 2:
        out, cache = bn.batchnorm_forward(x, gamma, beta)
        return (lambda: bn.batchnorm_forward(x, gamma, beta),
                lambda: bn.batchnorm_backward(dout, cache),
                lambda: bn.batchnorm_backward_compact(dout, cache))
    out, cache = bn.spatial_batchnorm_forward(x, gamma, beta)
    cache_2d, shape = cache

    def node_by_node():  # the spatial backward through the node-by-node 2-D version
        rows = dout.transpose(0, 2, 3, 1).reshape(-1, shape[1])
        return bn.batchnorm_backward(rows, cache_2d)

    return (lambda: bn.spatial_batchnorm_forward(x, gamma, beta),
            node_by_node,
            lambda: bn.spatial_batchnorm_backward(dout, cache))


def _torch(x, gamma, beta, dout):
    xt = torch.from_numpy(x).requires_grad_()
    gt = torch.from_numpy(gamma).requires_grad_()
    bt = torch.from_numpy(beta).requires_grad_()
    dt = torch.from_numpy(dout)
    with torch.no_grad():
        def forward():
            return F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    graph_out = F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)

    def backward():
        xt.grad = gt.grad = bt.grad = None
        graph_out.backward(dt, retain_graph=True)

    return forward, backward


def run(tiny: bool = False) -> list[Result]:
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    repeats = 3 if tiny else 15
    results = [Result("kernels: torch threads", 1, "threads")]
    try:
        for dtype in (np.float32, np.float64):
            for label, shape in (TINY_SHAPES if tiny else SHAPES).items():
                rng = np.random.default_rng(0)
                channels = shape[1]
                x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)
                gamma = rng.uniform(0.5, 2.0, channels).astype(dtype)
                beta = rng.standard_normal(channels).astype(dtype)
                dout = rng.standard_normal(shape).astype(dtype)
                ours_forward, ours_node, ours_compact = _ours(x, gamma, beta, dout)
                torch_forward, torch_backward = _torch(x, gamma, beta, dout)
                t = interleaved_medians(
                    {"ours forward": ours_forward, "torch forward": torch_forward,
                     "ours node-by-node": ours_node, "ours compact": ours_compact,
                     "torch backward": torch_backward},
                    repeats=repeats,
                )
                case = f"{np.dtype(dtype).name} {label}"
                results += [
                    Result(f"forward ours {case}", t["ours forward"] * 1e3, "ms"),
                    Result(f"forward torch {case}", t["torch forward"] * 1e3, "ms"),
                    at_most(f"forward ours/torch {case}", t["ours forward"] / t["torch forward"], "x", 2),
                    Result(f"backward compact ours {case}", t["ours compact"] * 1e3, "ms"),
                    Result(f"backward torch autograd {case}", t["torch backward"] * 1e3, "ms"),
                    at_most(f"backward compact ours/torch {case}",
                            t["ours compact"] / t["torch backward"], "x", 2),
                    at_least(f"backward node-by-node/compact {case}",
                             t["ours node-by-node"] / t["ours compact"], "x", 2),
                ]
    finally:
        torch.set_num_threads(threads_before)
    return results
