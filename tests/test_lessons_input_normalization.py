"""helpers.lessons.input_normalization (notebook 01's computations).

Rescaling: ranges and moments of min-max, mean normalization, z-score and whitening; bad input.
Gradient descent on least squares: the loss, gradient and Hessian; divergence above 2/lambda_max;
the closed-form step count equals the loop's; steps fall after standardization and grow like
the condition number."""

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.lessons import input_normalization as ins

ROOT = Path(__file__).resolve().parent.parent


# --- data ------------------------------------------------------------------------------------


def test_car_data_has_the_promised_ranges_and_is_seeded():
    cars = ins.car_data()
    assert cars.x.shape == (200, 2) and cars.y.shape == (200,)
    assert 0 <= cars.x[:, 0].min() and cars.x[:, 0].max() <= 30
    assert 0 <= cars.x[:, 1].min() and cars.x[:, 1].max() <= 300_000
    assert cars.x[:, 1].std() / cars.x[:, 0].std() > 1000  # wildly different scales
    assert 0.6 < np.corrcoef(cars.x.T)[0, 1] < 0.9  # older cars drove further
    np.testing.assert_array_equal(ins.car_data().x, cars.x)
    assert not np.array_equal(ins.car_data(seed=1).x, cars.x)


@pytest.mark.parametrize("ratio, correlation", [(1.0, 0.0), (10.0, 0.5), (100.0, 0.95)])
def test_two_feature_problem_has_exact_statistics_and_minimizer(ratio, correlation):
    x, y = ins.two_feature_problem(ratio, correlation)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-12 * ratio)
    np.testing.assert_allclose(x.std(axis=0), [1.0, ratio], rtol=1e-12)
    np.testing.assert_allclose(np.corrcoef(x.T)[0, 1], correlation, atol=1e-12)
    np.testing.assert_allclose(ins.LeastSquares(x, y).minimizer, [1.5, 1.0 / ratio], rtol=1e-10)


def test_two_feature_problem_rejects_impossible_settings():
    with pytest.raises(ValueError, match="scale_ratio"):
        ins.two_feature_problem(0.0)
    with pytest.raises(ValueError, match="correlation"):
        ins.two_feature_problem(1.0, correlation=1.0)


# --- rescaling -------------------------------------------------------------------------------


def test_min_max_spans_exactly_zero_to_one():
    x = ins.car_data().x
    scaled = ins.min_max_scale(x)
    np.testing.assert_array_equal(scaled.min(axis=0), [0.0, 0.0])
    np.testing.assert_array_equal(scaled.max(axis=0), [1.0, 1.0])


def test_mean_normalization_is_not_min_max_it_is_centered_and_goes_negative():
    """The seed tutorial's (x - mean)/(max - min) is mean normalization, not scaling to [0, 1]."""
    x = ins.car_data().x
    normalized = ins.mean_normalize(x)
    np.testing.assert_allclose(normalized.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(normalized.max(axis=0) - normalized.min(axis=0), 1.0)
    assert (normalized < 0).mean() > 0.3
    assert np.all(normalized >= -1) and np.all(normalized <= 1)
    shift = ins.min_max_scale(x) - normalized  # the same up to one shift per feature
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-12)


def test_zscore_uses_ddof_0_and_the_reference_statistics():
    rng = np.random.default_rng(0)
    train, test = rng.normal(3, 2, size=(7, 3)), rng.normal(5, 4, size=(5, 3))
    z = ins.zscore(train)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(ins.zscore(train, ddof=1).std(axis=0), np.sqrt(6 / 7), rtol=1e-12)
    np.testing.assert_allclose(ins.zscore(test, reference=train),
                               (test - train.mean(axis=0)) / train.std(axis=0))
    np.testing.assert_allclose(ins.min_max_scale(test, reference=train),
                               (test - train.min(axis=0)) / (train.max(axis=0) - train.min(axis=0)))


def test_an_outlier_squashes_min_max_more_than_the_zscore():
    x = ins.car_data().x
    with_outlier = np.vstack([x, [[6.0, 2_000_000.0]]])
    spread = {}
    for name, scale in [("min-max", ins.min_max_scale), ("z-score", ins.zscore)]:
        spread[name] = scale(with_outlier)[:-1, 1].std() / scale(x)[:, 1].std()
    assert spread["min-max"] < 0.2 and spread["min-max"] < spread["z-score"] < 1


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 40), d=st.integers(1, 5), seed=st.integers(0, 10_000),
       scale=st.floats(1e-3, 1e5), offset=st.floats(-1e5, 1e5))
def test_rescalers_properties_for_random_shapes_scales_and_offsets(n, d, seed, scale, offset):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * scale * rng.uniform(0.1, 10, size=d) + offset
    scaled = ins.min_max_scale(x)
    assert scaled.min() >= -1e-9 and scaled.max() <= 1 + 1e-9
    z = ins.zscore(x)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-7)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-7)
    # rescaling a feature does not change its z-score
    np.testing.assert_allclose(ins.zscore(x * 1000.0), z, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("method", ["pca", "zca"])
def test_whitening_gives_the_identity_covariance(method):
    x = ins.car_data().x
    white = ins.whiten(x, method=method)
    np.testing.assert_allclose(white.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(white.T @ white / len(white), np.eye(2), atol=1e-9)


def test_zca_stays_closer_to_the_standardized_features_than_pca():
    z = ins.zscore(ins.car_data().x)
    closeness = {method: np.mean([abs(np.corrcoef(ins.whiten(z, method=method)[:, j], z[:, j])[0, 1])
                                  for j in range(2)]) for method in ("pca", "zca")}
    assert closeness["zca"] > closeness["pca"]


def test_whitening_fails_with_fewer_examples_than_features_but_standardizing_does_not():
    batch = np.random.default_rng(0).normal(size=(60, 100))
    with pytest.raises(ValueError, match="cannot be whitened"):
        ins.whiten(batch)
    np.testing.assert_allclose(ins.zscore(batch).std(axis=0), 1)


@pytest.mark.parametrize("function", [ins.min_max_scale, ins.mean_normalize, ins.zscore, ins.whiten])
def test_bad_input_raises_value_errors_that_say_what_was_expected(function):
    with pytest.raises(ValueError, match="2-D"):
        function(np.arange(5.0))
    with pytest.raises(ValueError, match="at least 2 rows"):
        function(np.ones((1, 3)))
    with pytest.raises(ValueError, match="same number of columns"):
        function(np.ones((4, 2)), reference=np.arange(12.0).reshape(4, 3))


@pytest.mark.parametrize("function", [ins.min_max_scale, ins.mean_normalize, ins.zscore])
def test_a_constant_feature_is_named_instead_of_dividing_by_zero(function):
    x = np.column_stack([np.arange(5.0), np.full(5, 3.0)])
    with pytest.raises(ValueError, match=r"feature\(s\) \[1\] are constant"):
        function(x)


def test_whiten_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="'pca' or 'zca'"):
        ins.whiten(np.eye(3), method="cholesky")


# --- least squares and gradient descent ------------------------------------------------------


@pytest.fixture
def problem():
    x = ins.add_intercept(ins.zscore(ins.car_data().x))
    return ins.LeastSquares(x, ins.car_data().y)


def test_loss_gradient_and_hessian_agree_with_their_definitions(problem):
    w = np.array([1000.0, -200.0, 300.0])
    h = 1e-3
    numerical = np.array([(problem.loss(w + h * e) - problem.loss(w - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(problem.gradient(w), numerical, rtol=1e-6)
    np.testing.assert_allclose(problem.hessian, problem.x.T @ problem.x / len(problem.x))
    np.testing.assert_allclose(problem.gradient(problem.minimizer), 0, atol=1e-8)
    np.testing.assert_allclose(problem.excess_loss(w), problem.loss(w) - problem.min_loss, rtol=1e-9)
    grid = np.stack([w, problem.minimizer, 2 * w])
    np.testing.assert_allclose(problem.excess_loss(grid)[1], 0, atol=1e-6)


def test_largest_stable_learning_rate_separates_convergence_from_divergence(problem):
    limit = ins.largest_stable_learning_rate(problem.hessian)
    np.testing.assert_allclose(limit, 2 / np.linalg.eigvalsh(problem.hessian)[-1])
    below = ins.gradient_descent(problem, np.zeros(3), 0.98 * limit, max_steps=5000)
    above = ins.gradient_descent(problem, np.zeros(3), 1.02 * limit, max_steps=5000)
    assert below.converged and not below.diverged
    assert above.diverged and not above.converged
    assert ins.steps_to_tolerance(problem.hessian, -problem.minimizer, 1.02 * limit) is None


def test_a_learning_rate_of_exactly_two_over_lambda_oscillates_forever():
    hessian = np.diag([1.0, 4.0])
    assert ins.steps_to_tolerance(hessian, np.array([1.0, 1.0]), 0.5) is None
    # unless the steep direction has nothing to fix
    assert ins.steps_to_tolerance(hessian, np.array([1.0, 0.0]), 0.5) is not None


@pytest.mark.parametrize("ratio, correlation, lr_fraction", [
    (1.0, 0.0, 0.5), (3.0, 0.0, 0.5), (10.0, 0.6, 0.9), (10.0, 0.0, 0.99), (30.0, 0.3, 0.2),
])
def test_closed_form_step_count_equals_the_loop(ratio, correlation, lr_fraction):
    problem = ins.LeastSquares(*ins.two_feature_problem(ratio, correlation))
    lr = lr_fraction * ins.largest_stable_learning_rate(problem.hessian)
    run = ins.gradient_descent(problem, np.zeros(2), lr, max_steps=200_000)
    assert run.converged
    assert ins.steps_to_tolerance(problem.hessian, -problem.minimizer, lr) == run.steps
    k = min(20, len(run.excess))
    np.testing.assert_allclose(ins.excess_after(problem.hessian, -problem.minimizer, lr, np.arange(k)),
                               run.excess[:k], rtol=1e-8, atol=1e-12 * run.excess[0])


def test_steps_to_converge_fall_after_standardizing_and_whitening():
    cars = ins.car_data()
    steps = {}
    for name, features in [("raw", cars.x), ("min-max", ins.min_max_scale(cars.x)),
                           ("z-score", ins.zscore(cars.x)), ("whitened", ins.whiten(ins.zscore(cars.x)))]:
        problem = ins.LeastSquares(ins.add_intercept(features), cars.y)
        lr = 1 / ins.hessian_eigenvalues(problem.hessian)[-1]
        steps[name] = ins.steps_to_tolerance(problem.hessian, -problem.minimizer, lr)
    assert steps["raw"] > 1e10
    assert steps["whitened"] == 1
    assert steps["whitened"] < steps["z-score"] < steps["min-max"] < steps["raw"]
    assert steps["z-score"] < 100


def test_steps_grow_like_the_condition_number():
    kappas, steps = [], []
    for ratio in (10.0, 30.0, 100.0, 300.0):
        problem = ins.LeastSquares(*ins.two_feature_problem(ratio))
        kappa = ins.condition_number(problem.hessian)
        kappas.append(kappa)
        lr = 1 / ins.hessian_eigenvalues(problem.hessian)[-1]
        steps.append(ins.steps_to_tolerance(problem.hessian, -problem.minimizer, lr))
        np.testing.assert_allclose(kappa, ratio**2, rtol=1e-9)
    per_kappa = np.array(steps) / np.array(kappas)
    assert per_kappa.max() / per_kappa.min() < 1.1  # steps ∝ κ
    np.testing.assert_allclose(steps[-1], ins.steps_estimate(kappas[-1]), rtol=0.1)


def test_steps_estimate_is_kappa_over_two_log_one_over_tol_for_large_kappa():
    assert ins.steps_estimate(1.0) == 1.0
    np.testing.assert_allclose(ins.steps_estimate(1e6, tol=1e-6), 0.5e6 * np.log(1e6), rtol=1e-5)


def test_gradient_descent_rejects_bad_arguments(problem):
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        ins.gradient_descent(problem, np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="w0 must have 3 values"):
        ins.gradient_descent(problem, np.zeros(2), 0.1)
    with pytest.raises(ValueError, match="rows"):
        ins.LeastSquares(np.ones((4, 2)), np.ones(3))


def test_the_module_uses_numpy_alone():
    """The lesson's computations need numpy alone; from the course it takes only the translation
    of its messages (helpers.i18n, standard library only)."""
    source = (ROOT / "helpers" / "lessons" / "input_normalization.py").read_text()
    imports = set(re.findall(r"^(?:from|import) ([\w.]+)", source, re.M))
    assert imports <= {"__future__", "dataclasses", "math", "numpy", "helpers.i18n"}, imports
