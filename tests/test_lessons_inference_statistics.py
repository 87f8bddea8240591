"""helpers.lessons.inference_statistics (notebook 04): the EMA and its weights, streams of
batches, the running statistics against torch's BatchNorm1d, the bias of the biased variance, and the frozen MNIST layer."""

import numpy as np
import pytest
import torch

from helpers.lessons.inference_statistics import (
    batch_stream,
    bias_corrected,
    biased_variance_ratio,
    drifting_stream,
    ema_weights,
    frozen_bn_layer,
    mnist_flat,
    moving_average,
    running_statistics,
    trained_bn_mlp,
)


@pytest.mark.parametrize("momentum", [0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("steps", [1, 7, 100])
def test_ema_weights_sum_to_one_minus_what_stays_on_the_initial_value(momentum, steps):
    weights = ema_weights(momentum, steps)
    assert weights.shape == (steps,)
    np.testing.assert_allclose(weights.sum(), 1 - (1 - momentum) ** steps, rtol=1e-12)
    assert weights[-1] == pytest.approx(momentum)  # the newest batch
    assert np.all(np.diff(weights) >= 0)  # older batches weigh less


def test_moving_average_is_the_unrolled_sum(rng):
    values = rng.normal(size=(30, 3))
    momentum, initial = 0.2, np.array([0.0, 1.0, -2.0])
    trajectory = moving_average(values, momentum, initial)
    for t in (1, 5, 30):
        unrolled = (1 - momentum) ** t * initial + ema_weights(momentum, t) @ values[:t]
        np.testing.assert_allclose(trajectory[t - 1], unrolled, rtol=1e-12, atol=1e-14)


def test_cumulative_average_is_the_mean_of_what_came_so_far(rng):
    values = rng.normal(size=(25, 4))
    trajectory = moving_average(values, None)
    for t in (1, 10, 25):
        np.testing.assert_allclose(trajectory[t - 1], values[:t].mean(axis=0), rtol=1e-12)


def test_bias_correction_is_the_renormalized_weighted_average(rng):
    values = rng.normal(3.0, 1.0, size=(12, 2))
    momentum, initial = 0.1, 0.0
    corrected = bias_corrected(moving_average(values, momentum, initial), momentum, initial)
    for t in (1, 4, 12):
        weights = ema_weights(momentum, t)
        np.testing.assert_allclose(corrected[t - 1], weights @ values[:t] / weights.sum(), rtol=1e-12)
    np.testing.assert_allclose(corrected[0], values[0])  # the first batch alone, no start-up bias


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_running_statistics_agree_with_torch_batchnorm1d(rng, momentum):
    batches = rng.normal(2.0, 3.0, size=(20, 8, 3))
    trace = running_statistics(batches, momentum)
    bn = torch.nn.BatchNorm1d(3, momentum=momentum, dtype=torch.float64)
    for t, batch in enumerate(batches):
        bn(torch.from_numpy(batch))
        np.testing.assert_allclose(trace.running_mean[t], bn.running_mean.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(trace.running_var[t], bn.running_var.numpy(), rtol=1e-12)


def test_cumulative_running_statistics_are_the_mean_of_the_batch_statistics(rng):
    batches = rng.normal(size=(15, 6, 2))
    trace = running_statistics(batches, None)
    np.testing.assert_allclose(trace.running_mean[-1], batches.mean(axis=1).mean(axis=0), rtol=1e-12)
    unbiased = batches.var(axis=1, ddof=1)  # (T, D)
    np.testing.assert_allclose(trace.running_var[-1], unbiased.mean(axis=0), rtol=1e-12)


def test_running_statistics_need_two_values_per_batch():
    with pytest.raises(ValueError, match="at least 2"):
        running_statistics(np.zeros((3, 1, 2)))


def test_biased_variance_ratio_matches_m_minus_one_over_m():
    simulated, theory = biased_variance_ratio([2, 4, 16, 64], trials=20000, seed=1)
    np.testing.assert_allclose(theory, [0.5, 0.75, 15 / 16, 63 / 64])
    np.testing.assert_allclose(simulated, theory, atol=0.02)


def test_batch_stream_shuffled_covers_every_example_once_per_epoch():
    indices = batch_stream(100, 10, 20, "shuffled", seed=3)
    assert indices.shape == (20, 10)
    for epoch in indices.reshape(2, 100):
        assert sorted(epoch) == list(range(100))


def test_batch_stream_iid_draws_with_replacement():
    indices = batch_stream(10, 8, 50, "iid", seed=0)
    assert indices.shape == (50, 8) and indices.min() >= 0 and indices.max() < 10
    assert any(len(set(batch)) < 8 for batch in indices)  # repeats happen


def test_batch_stream_sorted_follows_the_labels():
    labels = np.repeat(np.arange(5), 20)[::-1].copy()
    indices = batch_stream(100, 10, 10, "sorted", labels=labels)
    assert np.all(np.diff(labels[indices.ravel()]) >= 0)
    with pytest.raises(ValueError, match="labels"):
        batch_stream(100, 10, 10, "sorted")


def test_drifting_stream_settles_at_the_end_mean():
    batches, true_mean = drifting_stream(steps=50, batch_size=4, drift_steps=20, seed=0)
    assert batches.shape == (50, 4, 1)
    assert true_mean[0] == pytest.approx(2.0) and np.all(true_mean[20:] == -1.0)


def test_frozen_layer_population_statistics_and_accuracy():
    layer = frozen_bn_layer()
    np.testing.assert_allclose(layer.population_mean, layer.train_z.mean(axis=0))
    accuracy = layer.accuracy(layer.population_mean, layer.population_var)
    assert accuracy > 0.85
    # the eval-mode accuracy of the torch model, computed the same way
    model, _ = trained_bn_mlp()
    norm = model.norms[0]
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor(layer.population_mean))
        norm.running_var.copy_(torch.tensor(layer.population_var))
        data = mnist_flat()
        predictions = model.eval()(data.x_test[:500]).argmax(dim=1).numpy()
    torch_accuracy = (predictions == layer.test_labels).mean()
    assert abs(torch_accuracy - accuracy) <= 0.004  # float32 vs float64: a tie or two may flip
    # vectorized over several sets of statistics
    both = layer.accuracy(np.stack([layer.population_mean] * 2), np.stack([layer.population_var] * 2))
    assert both.shape == (2,) and both[0] == accuracy


def test_trained_model_copies_are_independent():
    first, _ = trained_bn_mlp()
    first.norms[0].running_mean.fill_(float("nan"))
    second, _ = trained_bn_mlp()
    assert torch.isfinite(second.norms[0].running_mean).all()


# The recorded network (data/inference_statistics_trained_mlp.npz, for the panel)


def test_the_recorded_network_is_the_one_training_makes():
    """``recorded_bn_mlp()`` holds exactly ``trained_bn_mlp()``'s weights, recomputed fresh here
    (training runs on one torch thread, so it is deterministic on a given CPU and torch build;
    re-record with ``python -m tools.record_panel_runs inference_statistics`` after changing
    anything that changes training)."""
    from helpers.lessons.inference_statistics import recorded_bn_mlp

    trained, _ = trained_bn_mlp()
    recorded = recorded_bn_mlp()
    trained_state, recorded_state = trained.state_dict(), recorded.state_dict()
    assert list(trained_state) == list(recorded_state)
    for name, value in trained_state.items():
        assert value.dtype == recorded_state[name].dtype, name
        assert torch.equal(value, recorded_state[name]), name


def test_the_recorded_frozen_layer_equals_the_trained_one():
    fresh, recorded = frozen_bn_layer(), frozen_bn_layer(recorded=True)
    for name in ("train_z", "test_z", "gamma", "beta", "readout_weight", "population_var",
                 "trained_running_mean", "test_labels"):
        np.testing.assert_array_equal(getattr(fresh, name), getattr(recorded, name), err_msg=name)


def test_a_damaged_or_missing_record_is_refused(tmp_path):
    from helpers.data import DataFileError
    from helpers.lessons.inference_statistics import recorded_bn_mlp

    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(b"not the record")
    with pytest.raises(DataFileError, match="sha256"):
        recorded_bn_mlp(damaged)
    with pytest.raises(DataFileError, match="does not exist"):
        recorded_bn_mlp(tmp_path / "missing.npz")
