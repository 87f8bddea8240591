"""Notebook 03's panels (helpers.panels.backward_pass).

The generic widget tests (tests/test_widgets.py) call every panel over its controls' extremes;
these check that what the panels show is *right*: each upstream pattern hides what the notebook
says it hides, and the finite-difference curve is U-shaped."""


import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers.gradcheck import CORRECT_BELOW  # noqa: E402
from helpers.lessons.backward_pass import (  # noqa: E402
    BROKEN_BACKWARDS,
    finite_difference_errors,
)
from helpers.panel import Notice  # noqa: E402
from helpers.panels.backward_pass import (  # noqa: E402
    CORRECT_NAME,
    PANELS,
    compute_finite_difference_panel,
    compute_pattern_check,
    draw_finite_difference_panel,
    draw_pattern_check,
)

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
