"""Notebook 02's panels (helpers.panels.forward_transform).

The generic widget tests (tests/test_widgets.py) already call every panel over its controls'
extremes; these tests check that what the panels show is *right*: the output's mean and std,
the batch of one, gamma = 0, the noise of the batch mean, the sigmoid's verdict."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers.panel import Notice  # noqa: E402
from helpers.panels.forward_transform import (  # noqa: E402
    EPS,
    PANELS,
    compute_forward_histograms,
    compute_sigmoid_regime,
    draw_forward_histograms,
    draw_sigmoid_regime,
)

# --- the forward panel --------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [-3.0, -0.7, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("beta", [-3.0, 0.0, 2.5])
@pytest.mark.parametrize("batch_size", [2, 7, 32, 256])
def test_output_mean_is_beta_and_std_is_abs_gamma_with_the_eps_correction(gamma, beta, batch_size):
    r = compute_forward_histograms(gamma=gamma, beta=beta, batch_size=batch_size, batch_number=3)
    var = r["batch_std"] ** 2
    assert r["output_mean"] == pytest.approx(beta, abs=1e-12)
    assert r["output_std"] == pytest.approx(abs(gamma) * np.sqrt(var / (var + EPS)), rel=1e-10)
    np.testing.assert_allclose(r["y"], gamma * r["x_hat"] + beta, rtol=1e-12, atol=1e-12)
    assert r["x"].shape == r["x_hat"].shape == r["y"].shape == (batch_size,)


def test_the_panel_agrees_with_torch():
    r = compute_forward_histograms(gamma=-1.3, beta=0.4, batch_size=50, batch_number=2)
    expected = torch.nn.functional.batch_norm(
        torch.from_numpy(r["x"][:, None]), None, None, torch.tensor([-1.3], dtype=torch.float64),
        torch.tensor([0.4], dtype=torch.float64), training=True, eps=EPS).numpy()[:, 0]
    np.testing.assert_allclose(r["y"], expected, rtol=1e-10, atol=1e-12)


def test_batch_of_one_returns_a_notice_quoting_torchs_real_message():
    result = compute_forward_histograms(batch_size=1)
    assert isinstance(result, Notice)
    assert "its variance" in result.text or "0 as its variance" in result.text
    assert "x&#770; = (x &minus; x) / &radic;(0 + &epsilon;) = 0" in result.text
    with pytest.raises(ValueError) as error:
        torch.nn.functional.batch_norm(torch.zeros(1, 1), None, None, training=True)
    assert str(error.value) in result.text  # the message the Notice quotes is torch's, verbatim


def test_gamma_zero_gives_a_constant_output_and_says_so():
    r = compute_forward_histograms(gamma=0.0, beta=1.5, batch_size=16)
    assert np.all(r["y"] == 1.5) and r["output_std"] == 0.0
    figure = draw_forward_histograms(r)
    titles = [ax.get_title() for ax in figure.axes]
    assert any("every output equals β = 1.50" in title for title in titles)
    plt.close(figure)


def test_a_batch_depends_on_size_and_number_but_not_on_gamma_or_beta():
    a = compute_forward_histograms(gamma=1.0, beta=0.0, batch_size=20, batch_number=4)
    b = compute_forward_histograms(gamma=2.5, beta=-1.0, batch_size=20, batch_number=4)
    c = compute_forward_histograms(gamma=1.0, beta=0.0, batch_size=20, batch_number=5)
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["x_hat"], b["x_hat"])
    assert not np.array_equal(a["x"], c["x"])


def test_the_panels_mean_errors_over_many_batches_follow_the_same_law():
    def rms_error(batch_size):
        errors = [compute_forward_histograms(batch_size=batch_size, batch_number=k)["mean_error"]
                  for k in range(20)]
        return np.sqrt(np.mean(np.square(errors)))

    ratio = rms_error(4) / rms_error(256)
    assert 4 < ratio < 16  # sqrt(256 / 4) = 8, with the noise of 20 batches
    r = compute_forward_histograms(batch_size=64)
    assert r["typical_mean_error"] == pytest.approx(1 / 8, rel=0.15)


def test_forward_figure_has_four_axes_and_quotes_the_estimates():
    r = compute_forward_histograms(gamma=2.0, beta=-1.0, batch_size=32)
    figure = draw_forward_histograms(r)
    assert len(figure.axes) == 8  # four still axes, each with a see-through one for what moves
    titles = " | ".join(ax.get_title() for ax in figure.axes)
    assert "m = 32" in titles and f"{r['mean_error']:.2f}σ" in titles
    plt.close(figure)


def test_sigmoid_figure_reports_the_verdict():
    r = compute_sigmoid_regime(gamma=1.0, beta=6.0)
    figure = draw_sigmoid_regime(r)
    assert r["verdict"] in [ax.get_title() for ax in figure.axes]
    plt.close(figure)


def test_panels_are_listed():
    assert [panel.name for panel in PANELS] == ["forward: gamma, beta, batch size",
                                                "forward: sigmoid saturation"]


def test_panels_redraw_their_figure_in_place():
    """A slider move refills the kept figure (tests/test_panel_updates.py checks it then looks
    like a fresh one): here, gamma = 0 and back on the output plot."""
    panel = PANELS[0]
    assert all(p.update is not None for p in PANELS)
    figure = panel.draw(compute_forward_histograms())
    axes = list(figure.axes)
    output = figure.artists_to_update.moving_out  # the output plot's moving layer
    panel.update(figure, compute_forward_histograms(gamma=0.0, beta=1.5))
    assert "every output equals β = 1.50" in output.get_title()
    assert [text.get_visible() for text in output.texts] == [True]  # "the input is forgotten"
    panel.update(figure, compute_forward_histograms(gamma=2.0))
    assert output.get_title().startswith("y = 2.00·x̂") and figure.axes == axes
    assert [text.get_visible() for text in output.texts] == [False]
    plt.close(figure)
