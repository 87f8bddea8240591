"""Notebook 02's computations (helpers.lessons.forward_transform): the skewed population, the
1/sqrt(m) noise of batch estimates, the sigmoid's regimes, and the recorded layer inputs."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers.lessons.forward_transform import (  # noqa: E402
    SkewedPopulation,
    batch_estimate_errors,
    fixed_image_changes,
    sigmoid,
    sigmoid_regime,
    track_layer_inputs,
)
from helpers.panels.forward_transform import (  # noqa: E402
    compute_forward_histograms,
    compute_sigmoid_regime,
)

# --- the skewed population ----------------------------------------------------------------------


def test_population_mean_std_and_density_are_exact():
    population = SkewedPopulation()
    sample = population.sample(400_000, seed=0)
    assert sample.min() > population.shift
    assert sample.mean() == pytest.approx(population.mean, rel=2e-3)
    assert sample.std() == pytest.approx(population.std, rel=5e-3)
    grid = np.linspace(population.shift, population.shift + 60, 400_001)
    assert np.trapezoid(population.pdf(grid), grid) == pytest.approx(1.0, abs=1e-3)
    assert np.mean((sample - population.mean) ** 3) > 0  # skewed to the right


def test_population_rejects_bad_parameters():
    with pytest.raises(ValueError, match="scale and sigma must be positive"):
        SkewedPopulation(scale=0.0)


@pytest.mark.parametrize("batch_size", [2, 3, 5, 10, 40])
def test_x_hat_never_exceeds_sqrt_m_minus_1(batch_size):
    for batch_number in range(20):
        r = compute_forward_histograms(batch_size=batch_size, batch_number=batch_number)
        assert np.abs(r["x_hat"]).max() <= np.sqrt(batch_size - 1) + 1e-12
        assert r["x_hat_bound"] == pytest.approx(np.sqrt(batch_size - 1))
    if batch_size == 2:  # two values: x_hat is +-sqrt(var / (var + eps)), i.e. +-1 up to eps
        np.testing.assert_allclose(np.sort(r["x_hat"]), [-1, 1], atol=1e-3)


def test_batch_mean_noise_shrinks_like_one_over_sqrt_m():
    population = SkewedPopulation()
    sizes = np.array([2, 4, 8, 16, 32, 64, 128, 256])
    noise = batch_estimate_errors(population, sizes, batches=2000, seed=0)
    # RMS error of the batch mean, in population stds, is 1/sqrt(m) (any distribution)
    np.testing.assert_allclose(noise["mean_rmse"] * np.sqrt(sizes), 1.0, atol=0.08)
    slope = np.polyfit(np.log(sizes), np.log(noise["mean_rmse"]), 1)[0]
    assert slope == pytest.approx(-0.5, abs=0.03)
    # the batch std is noisy too, and biased low for small batches, approaching 1 as m grows
    assert np.all(np.diff(noise["std_rmse"]) < 0)
    assert noise["std_average"][0] < 0.6 < 0.95 < noise["std_average"][-1] < 1.0
    np.testing.assert_allclose(noise["expected_std_average_squared"], (sizes - 1) / sizes)
    # the biased variance averages (m - 1)/m sigma^2 for any population; the std falls further
    # short (Jensen: the mean of sqrt(var) is below sqrt of the mean var)
    np.testing.assert_allclose(noise["var_average"], (sizes - 1) / sizes, rtol=0.1)
    assert np.all(noise["std_average"] < np.sqrt(noise["var_average"]))


def test_batch_estimate_errors_rejects_bad_sizes():
    with pytest.raises(ValueError, match="positive integers"):
        batch_estimate_errors(SkewedPopulation(), [0, 4])


# --- the sigmoid panel and sigmoid_regime ---------------------------------------------------------


def test_sigmoid_is_stable_for_huge_inputs():
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        values = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0], atol=1e-300)


def test_normalized_inputs_keep_the_sigmoid_nearly_linear_and_gamma_beta_leave_that_regime():
    plain = compute_sigmoid_regime(gamma=1.0, beta=0.0)
    assert 0.98 < plain["linear_r2"] < 0.99
    assert plain["mean_slope"] == pytest.approx(0.207, abs=0.005)
    assert plain["saturated_fraction"] == 0.0
    assert plain["verdict"].startswith("nearly linear")
    wide = compute_sigmoid_regime(gamma=4.0, beta=0.0)
    assert wide["linear_r2"] < 0.86 and wide["verdict"].startswith("nonlinear")
    shifted = compute_sigmoid_regime(gamma=0.1, beta=8.0)
    assert shifted["saturated_fraction"] == 1.0 and shifted["mean_slope"] < 1e-3
    assert shifted["verdict"].startswith("saturated")
    # shrinking gamma makes the sigmoid ever more linear on the inputs
    r2 = [compute_sigmoid_regime(gamma=g)["linear_r2"] for g in (0.1, 0.5, 1.0, 2.0, 5.0, 10.0)]
    assert np.all(np.diff(r2) < 0)


def test_sigmoid_regime_needs_two_distinct_values():
    with pytest.raises(ValueError, match="two distinct"):
        sigmoid_regime(np.full(5, 3.0))


def test_sigmoid_regime_survives_complete_saturation():
    result = sigmoid_regime(np.array([200.0, 201.0, 202.0]))  # sigmoid is exactly 1.0 for all
    assert result["saturated_fraction"] == 1.0 and result["mean_slope"] == 0.0


# --- internal covariate shift ---------------------------------------------------------------------


def toy_data(n=300, seed=0):
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=generator)
    x = torch.rand(n, 784, generator=generator) * 0.3 + 0.05 * y[:, None]
    return x, y


@pytest.mark.parametrize("batchnorm", [False, True])
def test_track_layer_inputs_records_and_leaves_torch_alone(batchnorm):
    x, y = toy_data()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    threads = torch.get_num_threads()
    history = track_layer_inputs(x, y, x[:100], batchnorm=batchnorm, steps=30, record_every=10,
                                 lr=0.5, layer=1, unit=3)
    assert torch.equal(torch.rand(3), expected)  # the global random state is untouched
    assert torch.get_num_threads() == threads
    assert history.steps.tolist() == [0, 10, 20, 30]
    assert history.linear_pct.shape == history.sigmoid_pct.shape == (4, 3)
    assert history.sigmoid_mean.shape == history.sigmoid_std.shape == (4, 100)
    assert np.all(np.diff(history.sigmoid_pct, axis=1) >= 0)
    assert history.unit_inputs.shape == (4, 100)
    assert history.first_inputs.shape == history.last_inputs.shape == (100, 100)
    np.testing.assert_array_equal(history.unit_inputs[0], history.first_inputs[:, 3])   # unit 3
    np.testing.assert_array_equal(history.unit_inputs[-1], history.last_inputs[:, 3])
    if batchnorm:  # at step 0, gamma = 1 and beta = 0: every unit's input has mean 0, std ~1
        np.testing.assert_allclose(history.sigmoid_mean[0], 0.0, atol=1e-5)
        np.testing.assert_allclose(history.sigmoid_std[0], 1.0, atol=1e-3)
        # the probe is normalized with its own statistics: its means ARE beta, its spreads |gamma|
        assert not np.allclose(history.beta[-1], history.beta[0])
        np.testing.assert_allclose(history.sigmoid_mean, history.beta, atol=1e-5)
        np.testing.assert_allclose(history.sigmoid_std, np.abs(history.gamma), rtol=1e-3)
    else:
        np.testing.assert_array_equal(history.linear_pct, history.sigmoid_pct)
        assert np.all(np.isnan(history.beta)) and np.all(np.isnan(history.gamma))
    again = track_layer_inputs(x, y, x[:100], batchnorm=batchnorm, steps=30, record_every=10,
                               lr=0.5, layer=1, unit=3)
    np.testing.assert_array_equal(history.sigmoid_pct, again.sigmoid_pct)  # seeded


def test_fixed_image_changes_sees_what_standardizing_cannot_hide():
    rng = np.random.default_rng(0)
    first = rng.normal(size=(400, 5))
    # the same images, shifted and scaled per unit: standardized, nothing moved
    same = fixed_image_changes(first, 3.0 * first + 7.0)
    assert same["image_move"] < 1e-12 and same["correlation"] == pytest.approx(1.0)
    assert same["shape_change"] < 1e-12
    # the same distribution, the images shuffled: every image moves, the shape does not change
    shuffled = fixed_image_changes(first, first[rng.permutation(400)])
    assert shuffled["image_move"] > 1.0 and abs(shuffled["correlation"]) < 0.2
    assert shuffled["shape_change"] < 1e-12
    # a change of shape (squared values) shows in shape_change
    assert fixed_image_changes(first, first**2)["shape_change"] > 0.3
    with pytest.raises(ValueError, match="P, U"):
        fixed_image_changes(first, first[:10])


def test_track_layer_inputs_rejects_a_missing_layer():
    x, y = toy_data(n=50)
    with pytest.raises(ValueError, match="layer must be between 0 and 2"):
        track_layer_inputs(x, y, x[:10], batchnorm=False, steps=0, layer=5)
