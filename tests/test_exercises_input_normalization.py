"""Notebook 01's checkers accept the reference and name the typical mistakes."""

import numpy as np
import pytest

from helpers.exercises.input_normalization import (
    check_largest_stable_learning_rate,
    check_standardize,
)
from helpers.lessons.input_normalization import zscore

# --- exercise 1: standardize -----------------------------------------------------------------


def reference_standardize(x_train, x_test):
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    return (x_train - mean) / std, (x_test - mean) / std


def test_standardize_accepts_the_reference():
    feedback = check_standardize(reference_standardize)
    assert feedback.passed and feedback.attempted, feedback


def test_standardize_accepts_the_helper_and_lists():
    def with_helper(x_train, x_test):
        return [zscore(x_train), zscore(x_test, reference=x_train)]

    assert check_standardize(with_helper).passed


def test_standardize_not_attempted_is_a_friendly_note():
    def untouched(x_train, x_test):
        raise NotImplementedError

    feedback = check_standardize(untouched)
    assert not feedback.attempted and not feedback.passed
    assert "[not attempted]" in str(feedback)


def _train_stats(x_train, ddof=0):
    return x_train.mean(axis=0), x_train.std(axis=0, ddof=ddof)


MISTAKES = {
    "test statistics": (
        lambda tr, te: ((tr - tr.mean(0)) / tr.std(0), (te - te.mean(0)) / te.std(0)),
        "its own mean and std"),
    "ddof=1": (
        lambda tr, te: ((tr - tr.mean(0)) / tr.std(0, ddof=1), (te - tr.mean(0)) / tr.std(0, ddof=1)),
        "ddof=1"),
    "per row": (
        lambda tr, te: ((tr - tr.mean(1, keepdims=True)) / tr.std(1, keepdims=True),
                        (te - te.mean(1, keepdims=True)) / te.std(1, keepdims=True)),
        "per row"),
    "whole array": (
        lambda tr, te: ((tr - tr.mean()) / tr.std(), (te - tr.mean()) / tr.std()),
        "one mean and one std over the whole array"),
    "train and test pooled": (
        lambda tr, te: tuple(np.split(zscore(np.vstack([tr, te])), [len(tr)])),
        "training and test sets together"),
    "no division": (
        lambda tr, te: (tr - tr.mean(0), te - tr.mean(0)),
        "did not divide"),
    "no centering": (
        lambda tr, te: (tr / tr.std(0), te / tr.std(0)),
        "did not subtract the mean"),
    "variance": (
        lambda tr, te: ((tr - tr.mean(0)) / tr.var(0), (te - tr.mean(0)) / tr.var(0)),
        "divided by the variance"),
    "min-max": (
        lambda tr, te: ((tr - tr.min(0)) / np.ptp(tr, 0), (te - tr.min(0)) / np.ptp(tr, 0)),
        "min-max scaling"),
    "mean normalization": (
        lambda tr, te: ((tr - tr.mean(0)) / np.ptp(tr, 0), (te - tr.mean(0)) / np.ptp(tr, 0)),
        "mean normalization"),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_standardize_names_the_mistake(name):
    function, phrase = MISTAKES[name]
    feedback = check_standardize(function)
    assert feedback.attempted and not feedback.passed
    assert phrase in str(feedback), str(feedback)


def test_standardize_catches_changing_the_input_in_place():
    def in_place(x_train, x_test):
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        x_train -= mean
        x_train /= std
        x_test -= mean
        x_test /= std
        return x_train, x_test

    feedback = check_standardize(in_place)
    assert not feedback.passed and "in place" in str(feedback)


@pytest.mark.parametrize("result, phrase", [
    (None, "Return a pair"),
    ((None, None), "is None"),
    ((np.zeros((2, 2)), np.zeros((2, 2))), "shape"),
])
def test_standardize_explains_unusable_return_values(result, phrase):
    feedback = check_standardize(lambda x_train, x_test: result)
    assert not feedback.passed and phrase in str(feedback)


def test_standardize_reports_an_exception():
    def broken(x_train, x_test):
        return x_train @ x_test

    feedback = check_standardize(broken)
    assert not feedback.passed and "raised ValueError" in str(feedback)


def test_standardize_says_which_output_is_wrong_for_an_unknown_mistake():
    def test_set_off(x_train, x_test):
        z_train, z_test = reference_standardize(x_train, x_test)
        return z_train, z_test + 0.1

    feedback = check_standardize(test_set_off)
    assert not feedback.passed and "z_train is right but z_test is not" in str(feedback)


@pytest.mark.parametrize("guard, formula", [
    (lambda x: x.std(axis=0) + 1e-8, "std + c"),
    (lambda x: x.std(axis=0) + 1e-6, "std + c"),
    (lambda x: np.sqrt(x.var(axis=0) + 1e-8), "sqrt(var + c)"),
])
def test_standardize_names_a_small_constant_added_to_the_std(guard, formula):
    """std + 1e-8 is a common guard; on a feature with std 1e-3 it is off by 1e-5 (relative),
    beyond the tolerance: the reader is told so, and where BN puts its eps."""
    def guarded(x_train, x_test):
        mean, denominator = x_train.mean(axis=0), guard(x_train)
        return (x_train - mean) / denominator, (x_test - mean) / denominator

    feedback = check_standardize(guarded)
    assert not feedback.passed
    message = str(feedback)
    assert f"divide by {formula}" in message and "1e-7" in message and "sqrt(var + eps)" in message


def test_a_guard_too_small_to_matter_passes():
    def guarded(x_train, x_test):
        mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-15
        return (x_train - mean) / std, (x_test - mean) / std

    assert check_standardize(guarded).passed


# --- exercise 2: largest stable learning rate -------------------------------------------------


def reference_rate(x):
    return 2.0 / np.linalg.eigvalsh(x.T @ x / len(x))[-1]


def test_learning_rate_accepts_the_reference_and_shows_the_experiment():
    feedback = check_largest_stable_learning_rate(reference_rate)
    assert feedback.passed, feedback
    assert "0.99" in str(feedback) and "diverges" in str(feedback) and "converges" in str(feedback)


def test_learning_rate_not_attempted():
    def untouched(x):
        raise NotImplementedError

    assert not check_largest_stable_learning_rate(untouched).attempted


RATE_MISTAKES = {
    "one over lambda": (lambda x: 1.0 / np.linalg.eigvalsh(x.T @ x / len(x))[-1], "1/λ_max"),
    "no 1/n": (lambda x: 2.0 / np.linalg.eigvalsh(x.T @ x)[-1], "forgot the 1/n"),
    "lambda min": (lambda x: 2.0 / np.linalg.eigvalsh(x.T @ x / len(x))[0], "smallest eigenvalue"),
    "diagonal": (lambda x: 2.0 / np.max(np.sum(x**2, axis=0) / len(x)), "diagonal entry"),
    "trace": (lambda x: 2.0 / np.trace(x.T @ x / len(x)), "trace"),
    "singular value": (lambda x: 2.0 / np.linalg.svd(x, compute_uv=False)[0], "singular value"),
    "centered": (lambda x: 2.0 / np.linalg.eigvalsh(np.cov(x.T, bias=True))[-1], "centered"),
}


@pytest.mark.parametrize("name", RATE_MISTAKES)
def test_learning_rate_names_the_mistake(name):
    function, phrase = RATE_MISTAKES[name]
    feedback = check_largest_stable_learning_rate(function)
    assert feedback.attempted and not feedback.passed
    assert phrase in str(feedback), str(feedback)


def test_learning_rate_unknown_answer_says_whether_it_diverges():
    too_big = check_largest_stable_learning_rate(lambda x: 10 * reference_rate(x))
    too_small = check_largest_stable_learning_rate(lambda x: 0.37 * reference_rate(x))
    assert "diverges" in str(too_big) and "is stable, but the limit" in str(too_small)


@pytest.mark.parametrize("answer, phrase", [(None, "one number"), (np.ones(3), "one number")])
def test_learning_rate_needs_one_number(answer, phrase):
    feedback = check_largest_stable_learning_rate(lambda x: answer)
    assert not feedback.passed and phrase in str(feedback)
