"""The computations behind notebook 03, "The backward pass".

Kept out of ``helpers.bn`` (the reference implementation) because they are teaching
experiments, not parts of a BN layer:

- ``draw_computational_graph``: the forward graph of ``helpers.bn.batchnorm_forward``, node by
  node, with the local derivative on every edge.
- ``upstream_gradient``: the upstream-gradient patterns a gradient check might use (random,
  all ones, one-hot, constant per feature).
- ``BROKEN_BACKWARDS``: backward passes with the typical mistakes, for the check to catch.
- ``numerical_bn_gradients`` / ``gradient_check_errors``: centered-difference gradients of BN
  with respect to x, gamma and beta, and the relative errors of a backward pass against them.
- ``finite_difference_errors``: the relative error of a centered difference as a function of
  the step h, in float32 or float64 (truncation ~ h^2 against rounding ~ eps_machine / h).
- ``detached_mean_experiment``: the paper's §2 argument run as gradient descent (torch).
- ``scale_invariance``: BN(aWu) = BN(Wu) and the 1/a gradient of §3.3 (torch autograd).
- ``torch_batchnorm_gradients``: torch autograd's gradients of ``F.batch_norm``, as a judge.

Shapes: x is (N, D), gamma and beta are (D,), the upstream gradient dout is (N, D).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from helpers.bn import batchnorm_backward_compact, batchnorm_forward
from helpers.gradcheck import numerical_gradient, rel_error
from helpers.i18n import N_, _

__all__ = [
    "BROKEN_BACKWARDS",
    "GRAPH_EDGES",
    "GRAPH_NODES",
    "UPSTREAM_PATTERNS",
    "backward_detached_statistics",
    "backward_dgamma_from_xc",
    "backward_first_gamma_everywhere",
    "backward_forgot_one_over_n",
    "backward_returns_zeros",
    "backward_without_mean_path",
    "backward_without_variance_path",
    "detached_mean_experiment",
    "draw_computational_graph",
    "example_batch",
    "finite_difference_errors",
    "gradient_check_errors",
    "numerical_bn_gradients",
    "scale_invariance",
    "torch_batchnorm_gradients",
    "upstream_gradient",
]


def example_batch(n=8, d=3, seed=0):
    """A small seeded batch for gradient checks: x (n, d) with a different mean and spread per
    feature, gamma (d,) away from 0 and 1, beta (d,). All float64."""
    rng = np.random.default_rng(seed)
    spread = np.linspace(0.5, 2.0, d)
    offset = np.linspace(-1.0, 2.0, d)
    x = rng.standard_normal((n, d)) * spread + offset
    gamma = 1.0 + 0.5 * rng.standard_normal(d)
    beta = rng.standard_normal(d)
    return x, gamma, beta


# ----------------------------------------------------------------------------------------
# The computational graph (the node list of helpers.bn.batchnorm_backward's docstring)
# ----------------------------------------------------------------------------------------

#: name -> (formula shown in the box, shape, (x, y) position in the drawing)
GRAPH_NODES = {
    "x": (r"$x$", "(N, D)", (0.0, 1.0)),
    "mu": (r"$\mu = \mathrm{mean}(x)$", "(D,)", (2.2, 2.3)),
    "xc": (r"$x_c = x - \mu$", "(N, D)", (4.4, 1.0)),
    "var": (r"$\sigma^2 = \mathrm{mean}(x_c^2)$", "(D,)", (6.6, 2.3)),
    "std": (r"$s = \sqrt{\sigma^2 + \epsilon}$", "(D,)", (9.0, 2.3)),
    "inv_std": (r"$r = 1/s$", "(D,)", (11.4, 2.3)),
    "x_hat": (r"$\hat x = x_c \cdot r$", "(N, D)", (11.4, 1.0)),
    "gamma": (r"$\gamma$", "(D,)", (11.4, -0.3)),
    "beta": (r"$\beta$", "(D,)", (14.2, -0.3)),
    "out": (r"$y = \gamma \hat x + \beta$", "(N, D)", (14.2, 1.0)),
}

#: (from, to, local derivative d to / d from) for every edge of the graph
GRAPH_EDGES = (
    ("x", "mu", r"$\frac{1}{N}$"),
    ("x", "xc", r"$1$"),
    ("mu", "xc", r"$-1$"),
    ("xc", "var", r"$\frac{2 x_{c,i}}{N}$"),
    ("var", "std", r"$\frac{1}{2s}$"),
    ("std", "inv_std", r"$-\frac{1}{s^2}$"),
    ("inv_std", "x_hat", r"$x_{c,i}$"),
    ("xc", "x_hat", r"$r$"),
    ("x_hat", "out", r"$\gamma$"),
    ("gamma", "out", r"$\hat x_i$"),
    ("beta", "out", r"$1$"),
)

_BOX_HALF_WIDTH, _BOX_HALF_HEIGHT = 0.85, 0.3


def _box_edge_point(center, toward):
    """Where the segment from ``center`` to ``toward`` leaves the box drawn around ``center``."""
    (cx, cy), (tx, ty) = center, toward
    dx, dy = tx - cx, ty - cy
    scale = min(_BOX_HALF_WIDTH / abs(dx) if dx else np.inf,
                _BOX_HALF_HEIGHT / abs(dy) if dy else np.inf)
    return cx + scale * dx, cy + scale * dy


def draw_computational_graph(show_local_derivatives=True):
    """Draw the forward graph of batch normalization as boxes and arrows.

    Blue boxes hold (N, D) arrays (one value per example), orange boxes (D,) arrays (one value
    per feature, shared by the whole batch: their gradients are sums over the batch). Red
    labels on the arrows are the local derivatives the backward pass multiplies by.

    Returns:
        matplotlib Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    colors = {"(N, D)": "#dbe9f6", "(D,)": "#fde5c8"}
    fig, ax = plt.subplots(figsize=(11, 3.4))
    for formula, shape, (cx, cy) in GRAPH_NODES.values():
        ax.add_patch(FancyBboxPatch((cx - _BOX_HALF_WIDTH, cy - _BOX_HALF_HEIGHT),
                                    2 * _BOX_HALF_WIDTH, 2 * _BOX_HALF_HEIGHT,
                                    boxstyle="round,pad=0.02", facecolor=colors[shape],
                                    edgecolor="#555", linewidth=1))
        ax.text(cx, cy + 0.07, formula, ha="center", va="center", fontsize=10.5)
        ax.text(cx, cy - 0.19, shape, ha="center", va="center", fontsize=7.5, color="#555")

    for start, end, derivative in GRAPH_EDGES:
        center_start, center_end = GRAPH_NODES[start][2], GRAPH_NODES[end][2]
        tail = _box_edge_point(center_start, center_end)
        head = _box_edge_point(center_end, center_start)
        ax.annotate("", xy=head, xytext=tail,
                    arrowprops=dict(arrowstyle="-|>", color="#333", lw=1.1, shrinkA=1, shrinkB=1))
        if show_local_derivatives:
            label_x, label_y = (tail[0] + head[0]) / 2, (tail[1] + head[1]) / 2
            if abs(head[1] - tail[1]) < 1e-9:  # a horizontal arrow: label above it
                label_y += 0.2
            ax.text(label_x, label_y, derivative, ha="center", va="center", fontsize=10.5, color="#b22222",
                    bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none"))

    ax.set_xlim(-1.0, 15.2)
    ax.set_ylim(-0.75, 2.75)
    ax.set_aspect("equal")
    ax.axis("off")
    title = _("The forward graph of batch normalization (per feature: blue (N, D), orange (D,))")
    if show_local_derivatives:
        title += "\n" + _("red: the local derivative of each arrow, d(head) / d(tail)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------
# Upstream gradients and broken backward passes
# ----------------------------------------------------------------------------------------

#: the values a panel compares against stay English (N_): the dropdown shows them translated
UPSTREAM_PATTERNS = (N_("random"), N_("ones"), N_("one-hot"), N_("constant per feature"))


def upstream_gradient(pattern, shape, seed=0):
    """An upstream gradient dL/dout of the given pattern.

    Args:
        pattern: "random" (standard normal), "ones" (the loss is sum(out)), "one-hot" (a single
                 1 at row 0, feature 0: the loss is one output value), or "constant per feature"
                 (each column constant, a different constant per column)
        shape:   (N, D)
        seed:    for "random" and "constant per feature"

    Returns:
        (N, D) float64 array
    """
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    if pattern == "random":
        return rng.standard_normal(shape)
    if pattern == "ones":
        return np.ones(shape)
    if pattern == "one-hot":
        dout = np.zeros(shape)
        dout[0, 0] = 1.0
        return dout
    if pattern == "constant per feature":
        return np.broadcast_to(rng.standard_normal(shape[1]), shape).copy()
    raise ValueError(_("pattern must be one of {patterns}, got {pattern!r}").format(
        patterns=UPSTREAM_PATTERNS, pattern=pattern))


def backward_without_variance_path(dout, cache):
    """BROKEN: the popular formulas. dmu without its dvar term (harmless: that term is 0) and
    dx without the path through the variance, dx = dx_hat / s + dmu / N (not harmless)."""
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.x_hat).sum(axis=0)
    dx_hat = dout * cache.gamma
    dmu = -(dx_hat * cache.inv_std).sum(axis=0)
    dx = dx_hat * cache.inv_std + dmu / n
    return dx, dgamma, dbeta


def backward_without_mean_path(dout, cache):
    """BROKEN: forgets that mu depends on x (dx has no -dbeta term, sum(dx) != 0)."""
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.x_hat).sum(axis=0)
    dx = cache.gamma * cache.inv_std / n * (n * dout - cache.x_hat * dgamma)
    return dx, dgamma, dbeta


def backward_detached_statistics(dout, cache):
    """BROKEN: treats mu and var as constants, dx = gamma * dout / s."""
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.x_hat).sum(axis=0)
    dx = cache.gamma * cache.inv_std * dout
    return dx, dgamma, dbeta


def backward_forgot_one_over_n(dout, cache):
    """BROKEN: the node-by-node backward with the 1/N of mu = mean(x) forgotten (dx = dxc + dmu)."""
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.x_hat).sum(axis=0)
    n = dout.shape[0]
    dx_hat = dout * cache.gamma
    dvar = -0.5 * (dx_hat * cache.xc).sum(axis=0) * cache.inv_std**3
    dxc = dx_hat * cache.inv_std + 2.0 * cache.xc * dvar / n
    dx = dxc - dxc.sum(axis=0)
    return dx, dgamma, dbeta


def backward_returns_zeros(dout, cache):
    """BROKEN: dx is all zeros (dgamma and dbeta are right)."""
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.x_hat).sum(axis=0)
    return np.zeros_like(dout), dgamma, dbeta


def backward_dgamma_from_xc(dout, cache):
    """BROKEN: dgamma = sum(dout * xc), the centred input instead of the normalized one
    (dx and dbeta are right)."""
    dx, _dgamma, dbeta = batchnorm_backward_compact(dout, cache)
    dgamma = (dout * cache.xc).sum(axis=0)
    return dx, dgamma, dbeta


def backward_first_gamma_everywhere(dout, cache):
    """BROKEN: a broadcasting slip, gamma[0] used for every feature in dx (right for feature 0
    only; dgamma and dbeta are right)."""
    dx, dgamma, dbeta = batchnorm_backward_compact(dout, cache)
    return dx * cache.gamma[0] / cache.gamma, dgamma, dbeta


#: label -> backward(dout, cache) -> (dx, dgamma, dbeta), each with one typical mistake. The
#: labels are in the language set before the import (the setup cell sets it first): the notebook
#: prints them and looks the backward passes up by them, in its own language.
BROKEN_BACKWARDS = {
    _("dx = 0"): backward_returns_zeros,
    _("no path through var"): backward_without_variance_path,
    _("no path through mu"): backward_without_mean_path,
    _("mu, var detached"): backward_detached_statistics,
    _("forgot 1/N in dmu"): backward_forgot_one_over_n,
    _("dgamma uses xc"): backward_dgamma_from_xc,
    _("gamma[0] for all"): backward_first_gamma_everywhere,
}


# ----------------------------------------------------------------------------------------
# Numerical gradient checks
# ----------------------------------------------------------------------------------------


def numerical_bn_gradients(x, gamma, beta, dout, h=1e-5, eps=1e-5):
    """Centered-difference gradients of L = sum(BN(x, gamma, beta) * dout).

    Args:
        x: (N, D); gamma, beta: (D,); dout: (N, D); h: step; eps: BN's eps

    Returns:
        {"dx": (N, D), "dgamma": (D,), "dbeta": (D,)}, float64
    """
    x, gamma, beta = (np.array(a, dtype=np.float64) for a in (x, gamma, beta))
    return {
        "dx": numerical_gradient(lambda v: batchnorm_forward(v, gamma, beta, eps)[0], x, dout, h),
        "dgamma": numerical_gradient(lambda v: batchnorm_forward(x, v, beta, eps)[0], gamma, dout, h),
        "dbeta": numerical_gradient(lambda v: batchnorm_forward(x, gamma, v, eps)[0], beta, dout, h),
    }


def gradient_check_errors(backward, x, gamma, beta, dout, numeric=None, eps=1e-5):
    """Relative errors (helpers.gradcheck.rel_error) of a backward pass against centered
    differences, for dx, dgamma and dbeta.

    Args:
        backward: backward(dout, cache) -> (dx, dgamma, dbeta)
        x, gamma, beta, dout: as in ``numerical_bn_gradients``
        numeric:  precomputed ``numerical_bn_gradients`` (reuse it to check many backwards)

    Returns:
        {"dx": float, "dgamma": float, "dbeta": float}
    """
    if numeric is None:
        numeric = numerical_bn_gradients(x, gamma, beta, dout, eps=eps)
    _out, cache = batchnorm_forward(np.asarray(x, dtype=np.float64), gamma, beta, eps)
    analytic = dict(zip(("dx", "dgamma", "dbeta"), backward(np.asarray(dout, dtype=np.float64), cache)))
    return {name: rel_error(analytic[name], numeric[name]) for name in ("dx", "dgamma", "dbeta")}


def finite_difference_errors(steps, dtype=np.float64, n=8, d=3, seed=0):
    """Relative error of the centered-difference dx against the exact (float64) one, per step h.

    The forward pass runs in ``dtype``: in float32 both the perturbed inputs x +- h and the
    outputs are rounded to about 7 digits, so small steps drown in rounding.

    Args:
        steps: sequence of step sizes h > 0
        dtype: np.float64 or np.float32
        n, d, seed: the batch (``example_batch``) and a random upstream gradient

    Returns:
        (len(steps),) float64 array of relative errors (1.0 means "all digits wrong")
    """
    x, gamma, beta = example_batch(n, d, seed)
    dout = upstream_gradient("random", x.shape, seed + 1)
    _out, cache = batchnorm_forward(x, gamma, beta)
    exact_dx = batchnorm_backward_compact(dout, cache)[0]
    errors = []
    for h in steps:
        x_low = x.astype(dtype)  # a fresh copy: numerical_gradient perturbs it in place
        numeric = numerical_gradient(lambda v: batchnorm_forward(v, gamma, beta)[0], x_low, dout, h=h)
        errors.append(rel_error(exact_dx, numeric))
    return np.array(errors)


# ----------------------------------------------------------------------------------------
# Torch experiments: the paper's §2 argument, scale invariance (§3.3), autograd as a judge
# ----------------------------------------------------------------------------------------


def torch_batchnorm_gradients(x, gamma, beta, dout, eps=1e-5):
    """dL/dx, dL/dgamma, dL/dbeta for L = sum(F.batch_norm(x, training=True) * dout), by
    torch autograd in float64. Inputs are numpy arrays ((N, D), (D,), (D,), (N, D)); returns
    numpy arrays of the same shapes."""
    x_t, gamma_t, beta_t = (torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)
                            for a in (x, gamma, beta))
    out = F.batch_norm(x_t, None, None, weight=gamma_t, bias=beta_t, training=True, eps=eps)
    # a scalar loss (not out.backward(dout)): the same gradients, without the seconds-long import
    # that a non-scalar backward triggers in recent torch versions
    (out * torch.tensor(np.asarray(dout, dtype=np.float64))).sum().backward()
    return x_t.grad.numpy(), gamma_t.grad.numpy(), beta_t.grad.numpy()


def detached_mean_experiment(detach_mean, steps=200, lr=0.5, n=64, d=4, seed=0):
    """The paper's §2 thought experiment, run: a layer x = u + b whose output is centred,
    x_hat = x - mean(x), trained by gradient descent on L = mean((x_hat - t)^2).

    The targets t have a non-zero mean, which a centred output can never match, so the loss
    keeps "asking" for a shift. With ``detach_mean=True`` the mean is treated as a constant
    (outside the gradient, torch ``.detach()``): every step moves b, the next normalization
    undoes the move, the loss stays where it is and b grows without bound. With
    ``detach_mean=False`` the gradient sees the normalization: dL/db = 0 exactly and b stays put.

    Args:
        detach_mean: compute the mean outside the gradient (True) or inside it (False)
        steps, lr:   gradient descent on b alone
        n, d, seed:  the fixed inputs u (n, d) and targets t (n, d)

    Returns:
        dict with "loss" (steps + 1,), "b_norm" (steps + 1,): the loss and |b| before each
        step and after the last one; "grad_b_norm" (steps,): |dL/db| at each step; "b": final (d,)
    """
    generator = torch.Generator().manual_seed(seed)
    u = torch.randn(n, d, generator=generator, dtype=torch.float64)
    target = torch.randn(n, d, generator=generator, dtype=torch.float64) + 1.0
    b = torch.zeros(d, dtype=torch.float64, requires_grad=True)

    def loss_of(b):
        x = u + b
        mean = x.mean(dim=0)
        if detach_mean:
            mean = mean.detach()
        x_hat = x - mean
        return ((x_hat - target) ** 2).mean()

    losses, b_norms, grad_norms = [], [], []
    for _step in range(steps):
        loss = loss_of(b)
        (grad,) = torch.autograd.grad(loss, b)
        losses.append(loss.item())
        b_norms.append(b.norm().item())
        grad_norms.append(grad.norm().item())
        with torch.no_grad():
            b -= lr * grad
    with torch.no_grad():
        losses.append(loss_of(b).item())
    b_norms.append(b.norm().item())
    return {"loss": np.array(losses), "b_norm": np.array(b_norms),
            "grad_b_norm": np.array(grad_norms), "b": b.detach().numpy().copy()}


def scale_invariance(scales, n=32, d_in=5, d_out=3, eps=1e-5, seed=0):
    """BN(a W u) against BN(W u) and their gradients, by torch autograd in float64 (§3.3).

    For each a: the output difference max |BN(aWu) - BN(Wu)|, and the gradients of
    L = sum(BN(W' u) * dout) with W' = aW with respect to u and to W' itself.

    Args:
        scales: sequence of a > 0
        n, d_in, d_out, eps, seed: batch u (n, d_in), weights W (d_out, d_in), BN's eps

    Returns:
        dict of (len(scales),) arrays: "output_change" max |BN(aWu) - BN(Wu)|;
        "deviation_from_ideal" max |BN(aWu) - BN_0(Wu)|, BN_0 = BN with eps = 0 (an exact invariant);
        "grad_u_change" max |dL/du(a) - dL/du(1)| / max |dL/du(1)|;
        "grad_w_norm" |dL/dW'| (Frobenius); "grad_w_norm_ratio" |dL/dW'(a)| / |dL/dW(1)|;
        "weight_dot_grad" max over rows of |sum_j W'_kj dL/dW'_kj| (0 when eps -> 0)
    """
    generator = torch.Generator().manual_seed(seed)
    u0 = torch.randn(n, d_in, generator=generator, dtype=torch.float64)
    w0 = torch.randn(d_out, d_in, generator=generator, dtype=torch.float64)
    dout = torch.randn(n, d_out, generator=generator, dtype=torch.float64)

    def run(a):
        u = u0.clone().requires_grad_(True)
        w = (a * w0).requires_grad_(True)
        out = F.batch_norm(u @ w.T, None, None, training=True, eps=eps)
        (out * dout).sum().backward()  # L = sum(BN(W'u) * dout), a scalar
        return out.detach(), u.grad, w.grad, w.detach()

    out_1, grad_u_1, grad_w_1, _w_1 = run(1.0)
    z = u0 @ w0.T
    ideal = (z - z.mean(dim=0)) / z.std(dim=0, unbiased=False)  # BN with eps = 0: exactly invariant
    result = {key: [] for key in ("output_change", "deviation_from_ideal", "grad_u_change",
                                  "grad_w_norm", "grad_w_norm_ratio", "weight_dot_grad")}
    for a in scales:
        out, grad_u, grad_w, w = run(float(a))
        result["output_change"].append((out - out_1).abs().max().item())
        result["deviation_from_ideal"].append((out - ideal).abs().max().item())
        result["grad_u_change"].append(((grad_u - grad_u_1).abs().max() / grad_u_1.abs().max()).item())
        result["grad_w_norm"].append(grad_w.norm().item())
        result["grad_w_norm_ratio"].append((grad_w.norm() / grad_w_1.norm()).item())
        result["weight_dot_grad"].append((w * grad_w).sum(dim=1).abs().max().item())
    return {key: np.array(values) for key, values in result.items()}
