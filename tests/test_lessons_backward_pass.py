"""Notebook 03's computations (helpers.lessons.backward_pass): the graph is helpers.bn's, the
broken backward passes are broken, the upstream patterns and numerical gradients agree with
torch, the detached-mean bias grows while the loss stays flat, and BN(aWu) has a 1/a weight
gradient."""

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers import bn  # noqa: E402
from helpers.gradcheck import CORRECT_BELOW, WRONG_ABOVE  # noqa: E402
from helpers.lessons.backward_pass import (  # noqa: E402
    BROKEN_BACKWARDS,
    GRAPH_EDGES,
    GRAPH_NODES,
    UPSTREAM_PATTERNS,
    detached_mean_experiment,
    draw_computational_graph,
    example_batch,
    gradient_check_errors,
    numerical_bn_gradients,
    scale_invariance,
    torch_batchnorm_gradients,
    upstream_gradient,
)

# --- the computational graph ------------------------------------------------------------------


def test_graph_nodes_are_the_node_list_of_batchnorm_backward():
    documented = re.findall(r"^\s+(\w+)\s+=", bn.batchnorm_backward.__doc__, re.M)
    assert documented == ["mu", "xc", "var", "std", "inv_std", "x_hat", "out"]
    assert set(GRAPH_NODES) == set(documented) | {"x", "gamma", "beta"}
    # the cache stores every intermediate node under the same name
    assert set(documented) - {"out"} <= set(bn.BatchNormCache.__dataclass_fields__)


def test_graph_edges_fan_out_where_the_backward_adds_two_paths():
    sources = [start for start, _, _ in GRAPH_EDGES]
    assert sources.count("x") == 2 and sources.count("xc") == 2
    assert {start for start, _, _ in GRAPH_EDGES} | {end for _, end, _ in GRAPH_EDGES} == set(GRAPH_NODES)
    # shapes: the nodes the docstring calls (D,) are drawn as (D,)
    assert {name for name, (_, shape, _) in GRAPH_NODES.items() if shape == "(D,)"} == {
        "mu", "var", "std", "inv_std", "gamma", "beta"}


def test_graph_draws():
    figure = draw_computational_graph()
    assert isinstance(figure, Figure)
    plt.close(figure)


# --- upstream gradients and broken backwards -------------------------------------------------


@pytest.mark.parametrize("pattern", UPSTREAM_PATTERNS)
def test_upstream_patterns_have_the_right_shape(pattern):
    dout = upstream_gradient(pattern, (5, 3), seed=0)
    assert dout.shape == (5, 3) and dout.dtype == np.float64


def test_unknown_pattern_is_a_value_error():
    with pytest.raises(ValueError, match="pattern must be one of"):
        upstream_gradient("zeros", (5, 3))


@pytest.mark.parametrize("pattern", ["ones", "constant per feature"])
def test_constant_columns_make_the_exact_dx_and_dgamma_zero(pattern):
    x, gamma, beta = example_batch(8, 3, seed=4)
    _, cache = bn.batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = bn.batchnorm_backward(upstream_gradient(pattern, x.shape, seed=2), cache)
    assert np.abs(dx).max() < 1e-13 and np.abs(dgamma).max() < 1e-13 and np.abs(dbeta).min() > 0.1


@pytest.mark.parametrize("name", list(BROKEN_BACKWARDS))
def test_every_broken_backward_fails_a_random_check(name):
    x, gamma, beta = example_batch(8, 3, seed=0)
    dout = upstream_gradient("random", x.shape, seed=1)
    errors = gradient_check_errors(BROKEN_BACKWARDS[name], x, gamma, beta, dout)
    assert max(errors.values()) > WRONG_ABOVE
    assert gradient_check_errors(bn.batchnorm_backward, x, gamma, beta, dout)["dx"] < CORRECT_BELOW


def test_numerical_gradients_match_torch_autograd():
    x, gamma, beta = example_batch(6, 2, seed=3)
    dout = upstream_gradient("random", x.shape, seed=5)
    numeric = numerical_bn_gradients(x, gamma, beta, dout)
    for name, exact in zip(("dx", "dgamma", "dbeta"), torch_batchnorm_gradients(x, gamma, beta, dout)):
        np.testing.assert_allclose(numeric[name], exact, rtol=1e-6, atol=1e-8)


def test_helpers_bn_matches_torch_autograd_to_1e_10():
    x, gamma, beta = example_batch(64, 7, seed=9)
    dout = upstream_gradient("random", x.shape, seed=9)
    _, cache = bn.batchnorm_forward(x, gamma, beta)
    for ours, judge in zip(bn.batchnorm_backward(dout, cache), torch_batchnorm_gradients(x, gamma, beta, dout)):
        assert np.abs(ours - judge).max() <= 1e-10


# --- the paper's §2 experiment and §3.3 scale invariance ------------------------------------------


def test_detached_mean_lets_b_grow_linearly_while_the_loss_stays_flat():
    run = detached_mean_experiment(detach_mean=True, steps=100, lr=0.5)
    growth = np.diff(run["b_norm"])
    assert run["b_norm"][-1] > 20
    assert growth.min() > 0 and np.ptp(growth) < 1e-9          # a straight line, never slowing
    assert np.ptp(run["loss"]) < 1e-9
    assert run["grad_b_norm"].min() > 0.1                        # the gradient never goes away


def test_mean_inside_the_gradient_keeps_b_still():
    run = detached_mean_experiment(detach_mean=False, steps=100, lr=0.5)
    assert run["grad_b_norm"].max() < 1e-12 and run["b_norm"].max() < 1e-12
    assert np.ptp(run["loss"]) < 1e-12
    assert run["loss"][0] == pytest.approx(detached_mean_experiment(True, steps=1)["loss"][0])


def test_scale_invariance_and_the_one_over_a_gradient():
    scales = np.array([1.0, 10.0, 100.0, 1000.0])
    result = scale_invariance(scales)
    np.testing.assert_allclose(scales * result["grad_w_norm_ratio"], 1.0, atol=1e-5)
    assert result["output_change"].max() < 1e-5 and result["grad_u_change"].max() < 1e-5
    # the only deviation is eps's, shrinking as 1/a^2
    np.testing.assert_allclose(result["deviation_from_ideal"] * scales**2,
                               result["deviation_from_ideal"][0], rtol=1e-3)
