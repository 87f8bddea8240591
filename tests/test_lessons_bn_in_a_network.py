"""Notebook 06's experiment runners (helpers.lessons.bn_in_a_network): shapes, determinism, the
in-process cache, the summaries; and Figure1MLP's optional dropout, which they use."""

import math

import numpy as np
import pytest
import torch

from helpers.lessons import bn_in_a_network as experiments
from helpers.lessons.bn_in_a_network import (
    Run,
    accuracy_table,
    cached_run,
    clear_cache,
    describe,
    distribution_shift,
    init_scale_sweep,
    learning_rate_sweep,
    outcome,
    run_figure1,
    saturated_fraction,
    stuck_units,
)
from helpers.models import Figure1MLP
from helpers.training import History

TINY = dict(steps=20, lr=0.3, record_every=10, train_size=600)


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield
    clear_cache()


def test_a_tiny_run_records_what_figure1_plots():
    run = run_figure1(True, progress=False, **TINY)
    history = run.history
    assert history.steps.tolist() == [0, 10, 20]
    assert history.test_accuracy.shape == (3,)
    assert history.percentiles.shape == (3, 10, 3)  # units 0-9 of the last layer, 15/50/85
    assert history.tracked_units == tuple((-1, unit) for unit in range(10))
    assert np.all(np.diff(history.percentiles, axis=2) >= 0)
    assert 0.0 <= run.train_accuracy <= 1.0
    assert run.test_accuracy == history.test_accuracy[-1]
    assert run.generalization_gap == pytest.approx(run.train_accuracy - run.test_accuracy)
    assert run.settings["batchnorm"] and run.settings["bn_position"] == "before"


def test_asking_again_returns_the_same_object():
    first = run_figure1(False, progress=False, **TINY)
    assert run_figure1(False, progress=False, **TINY) is first
    assert cached_run(False, **TINY) is first
    assert cached_run(True, **TINY) is None
    assert run_figure1(False, progress=False, **{**TINY, "lr": 0.1}) is not first


def test_the_plain_network_is_one_cache_entry_whatever_the_placement():
    before = run_figure1(False, bn_position="before", progress=False, **TINY)
    assert run_figure1(False, bn_position="after", progress=False, **TINY) is before
    bn_after = run_figure1(True, bn_position="after", progress=False, **TINY)
    assert bn_after is not run_figure1(True, bn_position="before", progress=False, **TINY)


def test_runs_are_deterministic():
    first = run_figure1(True, progress=False, **TINY)
    clear_cache()
    second = run_figure1(True, progress=False, **TINY)
    assert first is not second
    np.testing.assert_array_equal(first.history.test_accuracy, second.history.test_accuracy)
    np.testing.assert_array_equal(first.history.percentiles, second.history.percentiles)
    assert first.train_accuracy == second.train_accuracy
    other_seed = run_figure1(True, progress=False, seed=1, **TINY)
    assert not np.array_equal(first.history.percentiles, other_seed.history.percentiles)


def test_runs_leave_torch_threads_and_random_state_alone():
    threads = torch.get_num_threads()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    run_figure1(False, progress=False, **TINY)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.rand(3), expected)


def test_sweeps_pair_the_plain_and_the_bn_network():
    sweep = learning_rate_sweep([0.1, 1.0], steps=10, record_every=5, progress=False)
    assert list(sweep) == [0.1, 1.0]
    assert set(sweep[0.1]) == {"plain", "bn"}
    assert not sweep[0.1]["plain"].settings["batchnorm"] and sweep[0.1]["bn"].settings["batchnorm"]
    assert sweep[1.0]["bn"].history.steps.tolist() == [0, 5, 10]
    scales = init_scale_sweep([0.1, 1.0], steps=10, record_every=5, lr=0.1, progress=False)
    # the same setting reached from both sweeps is the same remembered run
    assert scales[0.1]["bn"] is sweep[0.1]["bn"]


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="bn_position"):
        run_figure1(True, bn_position="middle", **TINY)
    with pytest.raises(ValueError, match="steps and record_every"):
        run_figure1(True, **{**TINY, "steps": 0})
    with pytest.raises(ValueError, match="lr and init_std must be positive"):
        run_figure1(True, **{**TINY, "lr": 0.0})
    with pytest.raises(ValueError, match="train_size"):
        run_figure1(True, **{**TINY, "train_size": 10})


def fake_run(accuracy, diverged=False, loss=0.5, record_every=50):
    steps = np.arange(len(accuracy)) * record_every
    history = History(steps=steps, test_accuracy=np.array(accuracy, dtype=float),
                      train_loss=np.array([math.nan] + [loss] * (len(accuracy) - 1)),
                      percentiles=np.zeros((len(accuracy), 0, 3)), tracked_units=(),
                      quantiles=(15, 50, 85), diverged=diverged)
    return Run(history=history, settings=dict(record_every=record_every))


def test_outcome_and_description():
    assert outcome(fake_run([0.1, 0.5, 0.9])) == "trains"
    assert "90.0%" in describe(fake_run([0.1, 0.5, 0.9]))
    stalled = fake_run([0.1, 0.11, 0.1], loss=6.5)
    assert outcome(stalled) == "stalls"
    assert describe(stalled) == "stalled: 10.0% after 100 steps, loss 6.5"
    diverged = fake_run([0.1, 0.3], diverged=True)
    assert outcome(diverged) == "diverges"
    assert describe(diverged) == "diverged between steps 50 and 100 (loss > 1000)"


def test_distribution_shift_compares_the_last_record_with_a_chosen_one():
    percentiles = np.zeros((3, 2, 3))
    percentiles[:, 0] = [[-1, 0, 1], [-1, 0, 1], [-2, 0, 2]]  # unit 0 widens at the end
    percentiles[:, 1] = [[0, 1, 2], [5, 5, 5], [1, 2, 3]]     # unit 1 shifts by 1
    history = History(steps=np.array([0, 100, 200]), test_accuracy=np.zeros(3),
                      train_loss=np.zeros(3), percentiles=percentiles,
                      tracked_units=((-1, 0), (-1, 1)), quantiles=(15, 50, 85))
    np.testing.assert_allclose(distribution_shift(history, 0), [2 / 3, 1.0])
    with pytest.raises(ValueError, match="not recorded"):
        distribution_shift(history, 50)


def test_accuracy_table_lists_every_run_at_every_step():
    table = accuracy_table({"no BN": fake_run([0.1, 0.5, 0.9]), "BN": fake_run([0.1, 0.95])},
                           [50, 100])
    lines = table.splitlines()
    assert len(lines) == 3 and "step 50" in lines[0] and "step 100" in lines[0]
    assert lines[1].split()[-2:] == ["50.0%", "90.0%"]
    assert lines[2].split()[-2:] == ["95.0%", "-"]  # never recorded: a dash


def test_figure1_mlp_dropout_is_off_by_default_and_only_in_training():
    plain, with_dropout = Figure1MLP(seed=0), Figure1MLP(seed=0, dropout=0.5)
    for a, b in zip(plain.parameters(), with_dropout.parameters()):
        assert torch.equal(a, b)  # dropout adds no parameters and draws no random numbers
    x = torch.rand(8, 784)
    with_dropout.eval()
    plain.eval()
    assert torch.equal(with_dropout(x), plain(x))
    with_dropout.train()
    torch.manual_seed(0)
    assert not torch.equal(with_dropout(x), plain(x))
    with pytest.raises(ValueError, match="dropout must be a probability"):
        Figure1MLP(dropout=1.0)


def test_stuck_units_counts_units_that_answer_the_same_for_every_image():
    run = run_figure1(False, progress=False, **TINY)
    images = experiments.mnist().x_test[:200]
    assert 0.0 <= stuck_units(run, images) <= 1.0
    model = Figure1MLP(seed=0, init_std=0.3)  # weights large enough for the units to vary
    pinned = Run(history=run.history, settings={}, model=model)
    assert stuck_units(pinned, images) <= 0.02
    with torch.no_grad():  # the last hidden layer: half its units pinned at sigmoid(50) = 1
        model.linears[-1].weight[:50] = 0.0
        model.linears[-1].bias[:50] = 50.0
    assert 0.5 <= stuck_units(pinned, images) <= 0.52
    assert 0.5 <= saturated_fraction(pinned, images) <= 0.55  # pinned in the upper tail


# --- the recorded FULL_RUN (data/bn_in_a_network_full_run.json) -------------------------------

#: Recomputing a recorded run's first records fresh must give the recorded numbers. On the
#: machine that recorded them they come out identical (the accuracies bit for bit, the
#: percentiles to their 4 recorded decimals); another CPU may round float32 sums differently
#: over hundreds of steps, so the test allows a few test images and a little more than the rounding.
ACCURACY_TOLERANCE = 3e-4      # 3 of the 10,000 (or 6 of the 2,000) test images
PERCENTILE_TOLERANCE = 2e-4    # the record keeps 4 decimals (an error of at most 5e-5)
LOSS_TOLERANCE = 1e-4          # relative


@pytest.fixture(scope="module")
def record():
    return experiments.load_full_run()


def test_the_record_is_the_one_whose_checksum_the_course_knows(record):
    from helpers.data import sha256_of

    assert sha256_of(record.path) == experiments.FULL_RUN_SHA256
    assert record.path.name == experiments.FULL_RUN_FILENAME


def test_the_record_holds_the_runs_the_plan_and_section_6_describe(record):
    plan = experiments.full_run_plan(record.best_plain_lr)
    assert list(record.figure1) == list(plan)
    for label, run in record.figure1.items():
        expected = experiments._settings(**{**dict(
            batchnorm=False, bn_position="before", seed=0, dropout=0.0, train_size=None,
            eval_size=None, tracked_units=experiments.LAST_LAYER_UNITS), **plan[label]})
        assert run.settings == expected, label
        assert run.history.steps.tolist() == list(range(0, experiments.FULL_STEPS + 1,
                                                         experiments.FULL_RECORD_EVERY))
        assert run.history.percentiles.shape == (len(run.history.steps), 10, 3)
        assert not run.history.diverged
    assert sorted(record.regularization) == sorted(experiments.REG_VARIANTS)
    for name, runs in record.regularization.items():
        assert [run.settings for run in runs] == [
            experiments._settings(**{**dict(bn_position="before", dropout=0.0, batchnorm=False),
                                     **experiments.regularization_settings(
                                         name, seed, experiments.REG_FULL_STEPS)})
            for seed in experiments.REG_FULL_SEEDS]


def test_the_best_plain_rate_is_the_one_the_sweep_finds(record):
    sweep = learning_rate_sweep(experiments.LEARNING_RATES, progress=False)
    assert experiments.best_learning_rate(sweep, "plain") == record.best_plain_lr


def arguments_of(run) -> dict:
    """run_figure1's keyword arguments for a recorded run (the plain network stores no placement)."""
    return {**run.settings, "bn_position": run.settings["bn_position"] or "before"}


def assert_same_records(recorded: History, fresh: History, label: str):
    common = [step for step in fresh.steps if step in recorded.steps]
    assert len(common) >= 2, label
    for step in common:
        i, j = list(recorded.steps).index(step), list(fresh.steps).index(step)
        assert abs(recorded.test_accuracy[i] - fresh.test_accuracy[j]) <= ACCURACY_TOLERANCE, (label, step)
        np.testing.assert_allclose(recorded.percentiles[i], fresh.percentiles[j], rtol=0,
                                   atol=PERCENTILE_TOLERANCE, err_msg=f"{label}, step {step}")
        if step:
            assert recorded.train_loss[i] == pytest.approx(fresh.train_loss[j], rel=LOSS_TOLERANCE)


@pytest.mark.parametrize("label", ["no BN", "BN"])
def test_the_first_records_of_figure1_s_runs_recompute_fresh(record, label):
    recorded = record.figure1[label]
    settings = {**arguments_of(recorded), "steps": 2 * experiments.FULL_RECORD_EVERY}  # 1,000 of 50,000
    fresh = run_figure1(progress=False, **settings)
    assert_same_records(recorded.history, fresh.history, label)
    assert fresh.history.steps.tolist() == [0, 500, 1000]


def test_the_first_records_of_a_regularization_run_recompute_fresh(record):
    recorded = record.regularization["dropout"][1]   # dropout draws random numbers too
    settings = {**arguments_of(recorded), "steps": 2 * recorded.settings["record_every"]}
    fresh = run_figure1(progress=False, **settings)
    assert_same_records(recorded.history, fresh.history, "dropout, seed 1")


def test_a_damaged_record_is_refused(record, tmp_path):
    from helpers.data import DataFileError

    damaged = tmp_path / experiments.FULL_RUN_FILENAME
    damaged.write_text(record.path.read_text(encoding="utf-8").replace('"steps"', ' "steps"', 1),
                       encoding="utf-8")
    with pytest.raises(DataFileError, match="not the recorded FULL_RUN of notebook 06: its sha256"):
        experiments.load_full_run(damaged)
    with pytest.raises(DataFileError, match="does not exist"):
        experiments.load_full_run(tmp_path / "missing.json")


# The panel's recorded runs (data/bn_in_a_network_panel_runs.json)


def test_the_panel_record_has_its_checksum_and_every_run_of_the_plan():
    import json

    from helpers.data import find_data_file, sha256_of

    path = find_data_file(experiments.PANEL_RUNS_FILENAME)
    assert sha256_of(path) == experiments.PANEL_RUNS_SHA256
    stored = json.loads(path.read_text(encoding="utf-8"))["runs"]
    plan = experiments.panel_run_plan()
    assert list(stored) == list(plan) and len(plan) == 6 * 5 * 3
    for key, settings in plan.items():
        assert stored[key]["settings"] == experiments._json_settings(settings), key
    runs = experiments.load_panel_runs()
    run = experiments.recorded_panel_run(True, experiments.BASE_LR, experiments.BASE_INIT_STD, "after")
    assert run is runs[experiments._panel_run_key(True, 0.3, 0.1, "after")]
    assert run.settings == experiments._settings(**{**dict(dropout=0.0, train_size=None),
                                                    **experiments.panel_run_settings(True, 0.3, 0.1, "after")})
    assert experiments.recorded_panel_run(False, 0.3, 0.2) is None  # not a setting of the panel


def test_a_sample_of_the_panel_record_recomputes_fresh_exactly():
    """Three entries, chosen by a seeded draw, trained again: the same float32 numbers (each run
    trains on one torch thread, so it is deterministic on a given CPU and torch build; the file
    names the versions it was recorded with). Re-record with
    ``python -m tools.record_panel_runs bn_in_a_network`` after changing anything in training."""
    import json
    import random

    from helpers.data import find_data_file

    stored = json.loads(find_data_file(experiments.PANEL_RUNS_FILENAME).read_text(encoding="utf-8"))["runs"]
    plan = experiments.panel_run_plan()
    for key in random.Random(6).sample(sorted(plan), 3):
        assert experiments._train_and_record(plan[key]) == stored[key]["history"], key


def test_a_damaged_panel_record_is_refused(tmp_path):
    from helpers.data import DataFileError, find_data_file

    damaged = tmp_path / experiments.PANEL_RUNS_FILENAME
    damaged.write_text(find_data_file(experiments.PANEL_RUNS_FILENAME).read_text(encoding="utf-8")
                       .replace('"steps"', ' "steps"', 1), encoding="utf-8")
    with pytest.raises(DataFileError, match="its sha256"):
        experiments.load_panel_runs(damaged)
