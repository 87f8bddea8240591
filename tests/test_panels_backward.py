"""Notebook 03's panels and the computations behind them (helpers.backward_demo).

The generic widget tests (tests/test_widgets.py) call every panel over its controls' extremes;
these check that what notebook 03 shows is *right*: the graph is helpers.bn's, the broken
backward passes are broken, each upstream pattern hides what the notebook says it hides, the
finite-difference curve is U-shaped, the detached-mean bias grows while the loss stays flat,
and BN(aWu) has a 1/a weight gradient.
"""

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers import bn  # noqa: E402
from helpers.backward_demo import (  # noqa: E402
    BROKEN_BACKWARDS,
    GRAPH_EDGES,
    GRAPH_NODES,
    UPSTREAM_PATTERNS,
    detached_mean_experiment,
    draw_computational_graph,
    example_batch,
    finite_difference_errors,
    gradient_check_errors,
    numerical_bn_gradients,
    scale_invariance,
    torch_batchnorm_gradients,
    upstream_gradient,
)
from helpers.gradcheck import CORRECT_BELOW, WRONG_ABOVE  # noqa: E402
from helpers.panels.backward import (  # noqa: E402
    CORRECT_NAME,
    PANELS,
    compute_finite_difference_panel,
    compute_pattern_check,
    draw_finite_difference_panel,
    draw_pattern_check,
)
from helpers.panels.base import Notice  # noqa: E402

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


# --- the pattern panel ---------------------------------------------------------------------------


def test_random_pattern_catches_every_broken_backward_and_passes_the_correct_one():
    result = compute_pattern_check("random", 8)
    assert result["correct_verdict"] == "correct"
    assert sorted(result["caught"]) == sorted(BROKEN_BACKWARDS)


def test_ones_pattern_is_blind_and_even_fails_the_correct_backward():
    result = compute_pattern_check("ones", 8)
    assert result["correct_verdict"] == "WRONG"        # noise against noise
    assert sorted(result["caught"]) == sorted(["no path through mu", "mu, var detached", "forgot 1/N in dmu"])
    for name in ("dx = 0", "no path through var", "dgamma uses xc", "gamma[0] for all"):
        assert result["worst"][name] == pytest.approx(result["worst"][CORRECT_NAME], rel=1e-2)


def test_constant_per_feature_is_as_blind_as_ones():
    assert sorted(compute_pattern_check("constant per feature", 8)["caught"]) == sorted(
        compute_pattern_check("ones", 8)["caught"])


def test_one_hot_misses_only_the_bug_in_the_other_features():
    result = compute_pattern_check("one-hot", 8)
    assert result["correct_verdict"] == "correct"
    assert set(BROKEN_BACKWARDS) - set(result["caught"]) == {"gamma[0] for all"}


def test_batch_of_one_is_a_notice_and_two_works():
    assert isinstance(compute_pattern_check("random", 1), Notice)
    result = compute_pattern_check("random", 2)
    # two values normalize to about -1 and +1 whatever they are: the exact dx is of order eps,
    # so the correct backward is no longer clearly "correct", and the panel says why
    assert result["correct_verdict"] != "WRONG" and "N = 2" in result["note"]
    assert sorted(result["caught"]) == sorted(BROKEN_BACKWARDS)
    assert compute_pattern_check("random", 3)["note"] == ""
    figure = draw_pattern_check(result)
    assert isinstance(figure, Figure)
    plt.close(figure)


# --- the finite-difference panel -----------------------------------------------------------------


def test_finite_difference_curve_is_u_shaped_in_both_precisions():
    steps = np.logspace(-12, 0, 25)
    for dtype, best_below, best_above in ((np.float64, CORRECT_BELOW, 0.0), (np.float32, 1e-2, 1e-5)):
        errors = finite_difference_errors(steps, dtype)
        best = np.argmin(errors)
        assert 0 < best < len(steps) - 1
        assert best_above < errors[best] < best_below
        assert errors[0] > 100 * errors[best] and errors[-1] > 100 * errors[best]


def test_truncation_error_falls_as_h_squared():
    errors = finite_difference_errors([1e-2, 1e-3], np.float64)
    assert errors[0] / errors[1] == pytest.approx(100, rel=0.05)


def test_default_h_is_correct_in_float64_and_not_in_float32():
    assert compute_finite_difference_panel(1e-5, "float64")["verdict"] == "correct"
    assert compute_finite_difference_panel(1e-5, "float32")["verdict"] == "WRONG"
    assert compute_finite_difference_panel(1.0, "float64")["verdict"] == "WRONG"


def test_a_step_lost_to_rounding_is_a_notice():
    notice = compute_finite_difference_panel(1e-12, "float32")
    assert isinstance(notice, Notice) and "rounds back to x" in notice.text
    assert not isinstance(compute_finite_difference_panel(1e-12, "float64"), Notice)


def test_finite_difference_panel_draws_with_the_current_h_marked():
    result = compute_finite_difference_panel(1e-3, "float32")
    figure = draw_finite_difference_panel(result)
    assert "h = 1.0e-03" in figure.artists_to_update.moving.get_title()  # the moving layer's axes
    plt.close(figure)


def test_panels_are_listed():
    assert [panel.compute for panel in PANELS] == [compute_pattern_check, compute_finite_difference_panel]


def test_panels_redraw_their_figure_in_place():
    """A slider move refills the kept figure (tests/test_panel_updates.py checks it then looks
    like a fresh one): here, the N = 2 note comes and goes, and the marked h moves."""
    assert all(panel.update is not None for panel in PANELS)
    figure = draw_pattern_check(compute_pattern_check("random", 2))
    assert "N = 2" in figure.texts[0].get_text()
    PANELS[0].update(figure, compute_pattern_check("one-hot", 16))
    assert figure.texts[0].get_text() == "" and "one-hot" in figure.axes[0].get_title()
    plt.close(figure)
    figure = draw_finite_difference_panel(compute_finite_difference_panel(1e-5, "float64"))
    PANELS[1].update(figure, compute_finite_difference_panel(1e-2, "float32"))
    assert figure.artists_to_update.moving.get_title().startswith("float32, h = 1.0e-02")
    plt.close(figure)


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
