"""Notebook 07's experiment runners: the layers, the probes, caching and determinism.

Runs here are tiny (a few SGD steps): they check shapes, seeding and caching, not accuracy.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.lessons import why_bn_works as why
from helpers.lessons.why_bn_works import (
    GhostBatchNorm,
    NoisyBatchNorm1d,
    group_statistics,
    looking_only,
    model_loss_and_gradient,
    probe_along_gradient,
)


@pytest.fixture(autouse=True)
def fresh_cache():
    why.clear_cache()
    yield
    why.clear_cache()


# --- NoisyBatchNorm1d -------------------------------------------------------------------------


def test_noisy_bn_with_noise_zero_is_batchnorm():
    x = torch.randn(16, 5)
    noisy, plain = NoisyBatchNorm1d(5, noise=0.0), nn.BatchNorm1d(5)
    torch.testing.assert_close(noisy(x), plain(x), rtol=0, atol=0)
    torch.testing.assert_close(noisy.running_mean, plain.running_mean, rtol=0, atol=0)


def test_noisy_bn_shifts_and_scales_every_unit_differently_at_every_step():
    x = torch.randn(64, 6, dtype=torch.float64) * 3 + 2
    layer = NoisyBatchNorm1d(6, noise=1.0, seed=3).double()
    reference = nn.BatchNorm1d(6).double()
    seen_shifts = []
    for _ in range(5):
        y, y_bn = layer(x), reference(x)
        scale, shift = layer.last_scale.double(), layer.last_shift.double()
        torch.testing.assert_close(y, y_bn * scale + shift)
        # the unit's batch mean is the shift (beta = 0), its std is scaled (gamma = 1)
        torch.testing.assert_close(y.mean(dim=0), shift, atol=1e-12, rtol=0)
        torch.testing.assert_close(y.std(dim=0, unbiased=False), scale * y_bn.std(dim=0, unbiased=False))
        assert torch.all(shift.abs() <= 1.0) and torch.all((scale >= 0.5) & (scale <= 1.5))
        seen_shifts.append(shift)
    # a new draw at every call: the distribution moves from step to step
    differences = [float((a - b).abs().mean()) for a, b in zip(seen_shifts, seen_shifts[1:])]
    assert min(differences) > 0.05


def test_noisy_bn_is_seeded_has_no_noise_in_eval_and_can_hold_its_noise():
    x = torch.randn(32, 4)
    a, b = NoisyBatchNorm1d(4, seed=1), NoisyBatchNorm1d(4, seed=1)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    a.redraw = False
    held = a.last_shift.clone()
    a(x)
    torch.testing.assert_close(a.last_shift, held, rtol=0, atol=0)
    a.eval()
    reference = nn.BatchNorm1d(4)
    reference.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x), reference.eval()(x))


def test_noisy_bn_rejects_a_noise_outside_0_to_2():
    with pytest.raises(ValueError, match="noise"):
        NoisyBatchNorm1d(3, noise=2.5)


# --- GhostBatchNorm ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape, ghost", [((32, 5), 2), ((32, 5), 8), ((32, 3, 4, 4), 1),
                                          ((32, 3, 4, 4), 4)])
def test_ghost_batchnorm_normalizes_each_group_with_its_own_statistics(shape, ghost):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 1
    layer = GhostBatchNorm(shape[1], ghost).double()
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2.0)
        layer.bias.uniform_(-1.0, 1.0)
    out = layer(x)
    axes = (0, *range(2, x.dim()))
    view = (1, -1) + (1,) * (x.dim() - 2)
    expected, means, variances = [], [], []
    for chunk in x.split(ghost):
        mean = chunk.mean(dim=axes, keepdim=True)
        var = chunk.var(dim=axes, unbiased=False, keepdim=True)
        expected.append((chunk - mean) / torch.sqrt(var + 1e-5))
        values = chunk.numel() // shape[1]
        means.append(mean.flatten())
        variances.append(var.flatten() * values / (values - 1))
    expected = torch.cat(expected) * layer.weight.reshape(view) + layer.bias.reshape(view)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.running_mean, 0.1 * torch.stack(means).mean(dim=0))
    torch.testing.assert_close(layer.running_var, 0.9 + 0.1 * torch.stack(variances).mean(dim=0))


@pytest.mark.parametrize("shape", [(16, 5), (16, 3, 5, 5)])
def test_ghost_batchnorm_over_the_whole_batch_is_torch_batchnorm(shape):
    x = torch.randn(*shape)
    ghost = GhostBatchNorm(shape[1], shape[0])
    torch_bn = nn.BatchNorm1d(shape[1]) if len(shape) == 2 else nn.BatchNorm2d(shape[1])
    torch.testing.assert_close(ghost(x), torch_bn(x))
    torch.testing.assert_close(ghost.running_var, torch_bn.running_var)
    ghost.eval(), torch_bn.eval()
    torch.testing.assert_close(ghost(x), torch_bn(x))


def test_ghost_batchnorm_explains_impossible_batches():
    with pytest.raises(ValueError, match="more than one value per channel"):
        GhostBatchNorm(4, 1)(torch.randn(8, 4))
    with pytest.raises(ValueError, match="multiple of ghost_batch"):
        GhostBatchNorm(4, 3)(torch.randn(8, 4))
    with pytest.raises(ValueError, match="positive integer"):
        GhostBatchNorm(4, 0)
    # one image per group is fine for a feature map: each channel still has H x W values
    GhostBatchNorm(2, 1)(torch.randn(4, 2, 3, 3))


def test_looking_only_changes_neither_running_statistics_nor_noise():
    model = why.build_mlp("noisy", seed=0)
    model.train()
    model(torch.rand(8, 784))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    shift = model.norms[0].last_shift.clone()
    with looking_only(model):
        model(torch.rand(8, 784))
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    torch.testing.assert_close(model.norms[0].last_shift, shift, rtol=0, atol=0)
    assert model.norms[0].redraw and model.norms[0].momentum == 0.1


# --- model builders ---------------------------------------------------------------------------


def test_builders_give_the_requested_layers_with_weights_that_depend_on_the_seed_only():
    plain, noisy = why.build_mlp("none", seed=4), why.build_mlp("noisy", seed=4)
    assert isinstance(noisy.norms[0], NoisyBatchNorm1d)
    assert isinstance(why.build_mlp("batch", ghost_batch=2).norms[1], GhostBatchNorm)
    assert isinstance(why.build_mlp("group").norms[0], nn.GroupNorm)
    torch.testing.assert_close(noisy.linears[1].weight, why.build_mlp("batch", seed=4).linears[1].weight)
    assert plain.linears[0].weight.shape == (100, 784)
    relu = why.build_mlp("batch", activation="relu", seed=0)
    assert len(relu.linears) == why.RELU_DEPTH and relu(torch.rand(3, 784)).shape == (3, 10)
    cnn = why.build_cnn("batch", ghost_batch=4)
    assert isinstance(cnn.norm2, GhostBatchNorm) and cnn(torch.rand(8, 1, 28, 28)).shape == (8, 10)
    with pytest.raises(ValueError, match="norm"):
        why.build_mlp("weight")
    with pytest.raises(ValueError, match="activation"):
        why.build_mlp("none", activation="tanh")


# --- experiment 1: train_mlp ------------------------------------------------------------------


def test_train_mlp_records_the_right_shapes_is_cached_and_leaves_global_state_alone():
    rng_before, threads = torch.get_rng_state(), torch.get_num_threads()
    run = why.train_mlp("noisy", steps=12, record_every=5, checkpoint_every=6, seed=2, progress=False)
    assert torch.equal(torch.get_rng_state(), rng_before) and torch.get_num_threads() == threads
    assert run.unit_percentiles.shape == (12, 3)
    assert np.all(np.diff(run.unit_percentiles, axis=1) >= 0)  # 15th <= 50th <= 85th
    assert list(run.record_steps) == [0, 5, 10, 12] and run.test_accuracy.shape == (4,)
    assert run.accuracy_at(10) == run.test_accuracy[2]
    with pytest.raises(ValueError, match="recorded"):
        run.accuracy_at(7)
    assert sorted(run.checkpoints) == [0, 6, 12] and run.train_loss.shape == (12,)
    assert why.train_mlp("noisy", steps=12, record_every=5, checkpoint_every=6, seed=2) is run
    model = run.model(6)
    assert isinstance(model.norms[0], NoisyBatchNorm1d)
    with pytest.raises(ValueError, match="checkpoint"):
        run.model(7)


def test_train_mlp_is_deterministic():
    first = why.train_mlp("batch", steps=10, seed=5, progress=False)
    why.clear_cache()
    second = why.train_mlp("batch", steps=10, seed=5, progress=False)
    assert first is not second
    np.testing.assert_array_equal(first.unit_percentiles, second.unit_percentiles)
    np.testing.assert_array_equal(first.train_loss, second.train_loss)


def test_noisy_bn_run_really_shifts_the_unit_more_than_bn():
    """The point of experiment 1's noise: the distribution the next layer sees moves far more."""
    bn = why.train_mlp("batch", steps=20, progress=False)
    noisy = why.train_mlp("noisy", noise=1.0, steps=20, progress=False)
    assert noisy.step_shift() > 5 * bn.step_shift()
    assert why.train_mlp("noisy", noise=0.0, steps=20) is bn  # noise 0 is BN itself


def test_noise_sweep_trains_each_noise_once_and_shares_the_runs_with_train_mlp():
    """The notebook trains the noisy-BN slider's noises with noise_sweep: the panel must then
    find exactly those runs."""
    runs = why.noise_sweep([0.0, 0.5], steps=5, progress=False)
    assert list(runs) == [0.0, 0.5]
    assert runs[0.0] is why.train_mlp("batch", steps=5)  # noise 0 is BN itself
    assert runs[0.5] is why.train_mlp("noisy", noise=0.5, steps=5)
    assert why.noise_sweep([0.5], steps=5, progress=False)[0.5] is runs[0.5]


def test_train_mlp_rejects_bad_settings():
    with pytest.raises(ValueError, match="norm"):
        why.train_mlp("group", steps=2)
    with pytest.raises(ValueError, match="noise"):
        why.train_mlp("noisy", noise=3.0, steps=2)


# --- experiment 2: the probe ------------------------------------------------------------------


def test_probe_along_gradient_on_a_quadratic_matches_the_formulas():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(4, 4))
    a, b, w = q @ q.T + np.eye(4), rng.normal(size=4), rng.normal(size=4)

    def loss_and_gradient(v):
        return 0.5 * v @ a @ v + b @ v, a @ v + b

    etas = np.array([0.01, 0.1, 0.5])
    probe = probe_along_gradient(loss_and_gradient, w, etas)
    g = a @ w + b
    expected_losses = [loss_and_gradient(w - eta * g)[0] for eta in etas]
    np.testing.assert_allclose(probe.losses, expected_losses, rtol=1e-12)
    # the gradient of a quadratic changes by A (-eta g): exactly eta ||A g||
    np.testing.assert_allclose(probe.grad_changes, etas * np.linalg.norm(a @ g), rtol=1e-12)
    # so its effective smoothness is ||A g|| / ||g|| <= the largest eigenvalue of A
    assert probe.smoothness == pytest.approx(np.linalg.norm(a @ g) / np.linalg.norm(g))
    assert probe.smoothness <= np.linalg.eigvalsh(a).max() + 1e-12
    assert probe.loss0 == pytest.approx(loss_and_gradient(w)[0])


def test_probe_along_gradient_rejects_bad_input():
    def f(v):
        return float(v @ v), 2 * v

    with pytest.raises(ValueError, match="step_sizes"):
        probe_along_gradient(f, np.ones(3), [0.1, -0.1])
    with pytest.raises(ValueError, match="shape"):
        probe_along_gradient(lambda v: (0.0, np.ones(2)), np.ones(3), [0.1])


def test_model_loss_and_gradient_agrees_with_autograd_and_leaves_the_model_alone():
    model = why.build_mlp("batch", seed=0)
    x, y = torch.rand(20, 784), torch.randint(0, 10, (20,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    function, w0 = model_loss_and_gradient(model, x, y)
    loss, gradient = function(w0)
    reference = F.cross_entropy(model(x), y)
    reference.backward()
    expected = torch.cat([p.grad.flatten() for p in model.parameters()]).double().numpy()
    assert loss == pytest.approx(reference.item(), rel=1e-6)
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-7)
    function(w0 - 0.3 * gradient)  # evaluating elsewhere must not move the model
    for name, value in model.state_dict().items():
        if "running" in name or "num_batches" in name:
            # our own forward above (reference) updated the original model's running statistics
            continue
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)


def test_landscape_probe_shapes_and_cache():
    run = why.train_mlp("none", steps=10, checkpoint_every=5, activation="relu", progress=False)
    landscape = why.landscape_probe(run, step_multiples=(0.5, 1, 2), probe_size=50)
    assert list(landscape.steps) == [0, 5, 10]
    assert landscape.losses.shape == (3, 3) and landscape.grad_changes.shape == (3, 3)
    assert landscape.smoothness.shape == (3,) and np.all(landscape.smoothness > 0)
    assert why.landscape_probe(run, step_multiples=(0.5, 1, 2), probe_size=50) is landscape


# --- experiment 3: batch size -----------------------------------------------------------------


def test_batch_size_runs_share_groupnorm_across_batch_sizes_and_are_deterministic():
    gn2 = why.batch_size_run("mlp", "group", 2, steps=4)
    assert why.batch_size_run("mlp", "group", 32, steps=4) is gn2 and gn2.batch_size is None
    bn = why.batch_size_run("cnn", "batch", 4, steps=3)
    assert bn.batch_size == 4 and 0 <= bn.test_accuracy <= 1
    assert isinstance(bn.model().norm1, GhostBatchNorm) and not bn.model().training
    why.clear_cache()
    again = why.batch_size_run("cnn", "batch", 4, steps=3)
    assert again.test_accuracy == bn.test_accuracy
    # short runs are not mixed with the notebook's default-length runs
    assert why.remembered_size_runs("cnn") == []


def test_batch_size_sweep_lists_every_norm_and_size_and_train_mode_accuracy_works():
    sweep = why.batch_size_sweep("mlp", (2, 32), seeds=(0, 1), steps=3)
    assert set(sweep) == {"batch", "group", "layer"}
    assert all(set(by_size) == {2, 32} and all(len(runs) == 2 for runs in by_size.values())
               for by_size in sweep.values())
    assert sweep["layer"][2][0] is sweep["layer"][32][0]  # one LayerNorm run serves every size
    run = sweep["batch"][2][0]
    accuracy = why.train_mode_accuracy(run)
    assert 0 <= accuracy <= 1
    with pytest.raises(ValueError, match="only BN runs"):
        why.train_mode_accuracy(sweep["group"][2][0])


def test_batch_size_run_explains_settings_it_cannot_train():
    with pytest.raises(ValueError, match="more than one value per feature"):
        why.batch_size_run("mlp", "batch", 1, steps=2)
    with pytest.raises(ValueError, match="batch_size"):
        why.batch_size_run("mlp", "batch", 3, steps=2)
    with pytest.raises(ValueError, match="model_kind"):
        why.batch_size_run("rnn", "batch", 2, steps=2)


def test_normalizing_means_spread_shrinks_with_the_batch_for_bn_only():
    spreads = {size: why.normalizing_means("mlp", "batch", size, steps=2)["per_image"].std()
               for size in (2, 8, 32)}
    assert spreads[2] > spreads[8] > spreads[32]
    group = why.normalizing_means("mlp", "group", 2, steps=2)
    np.testing.assert_array_equal(group["per_image"],
                                  why.normalizing_means("mlp", "group", 32, steps=2)["per_image"])
    assert group["eval_mean"] is None and group["values_per_statistic"] == 25
    assert why.normalizing_means("cnn", "batch", 2, steps=2)["values_per_statistic"] == 2 * 28 * 28


def test_normalizing_means_are_remembered_and_the_same_as_computed_afresh():
    remembered = why.normalizing_means("mlp", "batch", 4, steps=2)
    assert why.normalizing_means("mlp", "batch", 4, steps=2) is remembered
    why.clear_cache()
    fresh = why.normalizing_means("mlp", "batch", 4, steps=2)
    assert fresh is not remembered
    np.testing.assert_array_equal(fresh["per_image"], remembered["per_image"])
    assert fresh["eval_mean"] == remembered["eval_mean"]


# --- GroupNorm's statistics -------------------------------------------------------------------


@pytest.mark.parametrize("shape, groups", [((3, 6, 4, 5), 3), ((2, 8), 4), ((2, 6, 3, 3), 1),
                                           ((2, 6, 3, 3), 6)])
def test_group_statistics_agree_with_torch_group_norm(rng, shape, groups):
    x = rng.normal(size=shape) * 2 + 1
    mean, var = group_statistics(x, groups)
    assert mean.shape == var.shape == (shape[0], groups)
    n, c = shape[:2]
    per_channel = c // groups
    expand = np.repeat  # channel c belongs to group c // (C / G)
    mean_c = expand(mean, per_channel, axis=1).reshape(n, c, *([1] * (len(shape) - 2)))
    var_c = expand(var, per_channel, axis=1).reshape(n, c, *([1] * (len(shape) - 2)))
    ours = (x - mean_c) / np.sqrt(var_c + 1e-5)
    torch_out = F.group_norm(torch.from_numpy(x), groups, eps=1e-5).numpy()
    np.testing.assert_allclose(ours, torch_out, rtol=1e-10, atol=1e-10)


def test_group_statistics_rejects_bad_input():
    with pytest.raises(ValueError, match="divisor"):
        group_statistics(np.zeros((2, 6, 2, 2)), 4)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        group_statistics(np.zeros((2, 6, 2)), 3)


# The panels' recorded runs (data/why_bn_works_panel_runs.json)


def test_the_panel_record_has_its_checksum_and_every_entry_of_the_plan():
    import json

    from helpers.data import find_data_file, sha256_of

    path = find_data_file(why.PANEL_RUNS_FILENAME)
    assert sha256_of(path) == why.PANEL_RUNS_SHA256
    stored = json.loads(path.read_text(encoding="utf-8"))["entries"]
    plan = why.panel_run_plan()
    assert list(stored) == list(plan)
    assert [tuple(entry["task"]) for entry in stored.values()] == list(plan.values())
    runs = why.load_panel_runs()
    assert sorted(runs.walks) == ["batch", "none"]
    assert len(runs.noisy) == 2 + len(why.PANEL_NOISES) - 1
    assert len(runs.sizes) == 2 * 2 + 5 + 6   # GroupNorm and LayerNorm once per model


def test_a_sample_of_the_panel_record_recomputes_fresh_exactly():
    """Three entries, one of each kind (noisy-BN run, walk, batch-size run) chosen by a seeded
    draw, computed again: the same numbers (each run trains
    on one torch thread, so it is deterministic on a given CPU and torch build; the file names
    the versions it was recorded with). Re-record with
    ``python -m tools.record_panel_runs why_bn_works`` after changing anything in training."""
    import json
    import random

    from helpers.data import find_data_file

    stored = json.loads(find_data_file(why.PANEL_RUNS_FILENAME).read_text(encoding="utf-8"))["entries"]
    plan = why.panel_run_plan()
    draw = random.Random(7)
    keys = [draw.choice(sorted(key for key, task in plan.items() if task[0] == kind))
            for kind in ("mlp", "walk", "size")]
    for key in keys:
        fresh = json.loads(json.dumps({"task": list(plan[key]), **why._record_task(plan[key])}))
        assert same_record(fresh, stored[key]), key


def same_record(a, b, rel: float = 1e-9) -> bool:
    """Equal structures, with floats equal to ``rel`` relative: the walks' float64 sums may
    differ in their last digit from one CPU to another (measured: 4e-15); anything a change of
    the training makes differs by far more."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_record(a[k], b[k], rel) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same_record(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-300)
    return a == b


def test_a_damaged_panel_record_is_refused(tmp_path):
    from helpers.data import DataFileError, find_data_file

    damaged = tmp_path / why.PANEL_RUNS_FILENAME
    damaged.write_text(find_data_file(why.PANEL_RUNS_FILENAME).read_text(encoding="utf-8")
                       .replace('"task"', ' "task"', 1), encoding="utf-8")
    with pytest.raises(DataFileError, match="its sha256"):
        why.load_panel_runs(damaged)
