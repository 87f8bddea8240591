"""Notebook 04's checkers accept correct answers and name the usual mistakes."""

from pathlib import Path

import nbformat
import numpy as np
import pytest

from helpers.bn import fold_batchnorm
from helpers.exercises.inference_statistics import check_fold_batchnorm, check_running_stats_update

# ----------------------------------------------------------------------------------------
# The running-statistics update: answers, right and wrong
# ----------------------------------------------------------------------------------------


def correct_update(running_mean, running_var, x, momentum):
    n = x.shape[0]
    return ((1 - momentum) * running_mean + momentum * x.mean(axis=0),
            (1 - momentum) * running_var + momentum * x.var(axis=0, ddof=1) * n / n)


def keras_update(running_mean, running_var, x, momentum):
    return (momentum * running_mean + (1 - momentum) * x.mean(axis=0),
            momentum * running_var + (1 - momentum) * x.var(axis=0, ddof=1))


def biased_update(running_mean, running_var, x, momentum):
    return ((1 - momentum) * running_mean + momentum * x.mean(axis=0),
            (1 - momentum) * running_var + momentum * x.var(axis=0))


def unbiased_mean_update(running_mean, running_var, x, momentum):
    n = x.shape[0]
    return ((1 - momentum) * running_mean + momentum * x.mean(axis=0) * n / (n - 1),
            (1 - momentum) * running_var + momentum * x.var(axis=0, ddof=1))


def in_place_update(running_mean, running_var, x, momentum):
    running_mean *= 1 - momentum
    running_mean += momentum * x.mean(axis=0)
    running_var *= 1 - momentum
    running_var += momentum * x.var(axis=0, ddof=1)
    return running_mean, running_var


def std_update(running_mean, running_var, x, momentum):
    return ((1 - momentum) * running_mean + momentum * x.mean(axis=0),
            (1 - momentum) * running_var + momentum * x.std(axis=0, ddof=1))


def wrong_axis_update(running_mean, running_var, x, momentum):
    return ((1 - momentum) * running_mean + momentum * x.mean(axis=1)[: len(running_mean)],
            (1 - momentum) * running_var + momentum * x.var(axis=0, ddof=1))


def not_attempted(*args):
    raise NotImplementedError("fill me in")


def crashes(*args):
    raise KeyError("oops")


def test_correct_update_passes():
    feedback = check_running_stats_update(correct_update)
    assert feedback.passed and feedback.attempted, str(feedback)
    assert "[correct]" in str(feedback)


@pytest.mark.parametrize("answer, words", [
    (keras_update, "Keras"),
    (biased_update, "n / (n - 1)"),
    (unbiased_mean_update, "only the variance needs the correction"),
    (std_update, "standard deviation"),
])
def test_update_mistakes_are_named(answer, words):
    feedback = check_running_stats_update(answer)
    assert not feedback.passed and feedback.attempted
    assert words in str(feedback), str(feedback)


def test_in_place_update_is_caught_even_though_the_values_are_right():
    feedback = check_running_stats_update(in_place_update)
    assert not feedback.passed
    assert "in place" in str(feedback)
    assert "Keras" not in str(feedback)


def test_update_wrong_in_one_value_says_which():
    feedback = check_running_stats_update(wrong_axis_update)
    assert not feedback.passed
    assert "running variance is right but the running mean is not" in str(feedback)


def test_not_attempted_and_crashing_answers_do_not_raise():
    feedback = check_running_stats_update(not_attempted)
    assert not feedback.attempted and not feedback.passed
    assert "not attempted" in str(feedback)
    feedback = check_running_stats_update(crashes)
    assert not feedback.passed and "KeyError" in str(feedback)


def test_update_returning_one_array_is_told_to_return_a_pair():
    feedback = check_running_stats_update(lambda m, v, x, momentum: m)
    assert not feedback.passed and "pair" in str(feedback)


# ----------------------------------------------------------------------------------------
# Folding
# ----------------------------------------------------------------------------------------


def _scale(gamma, var, eps):
    return gamma / np.sqrt(var + eps)


def correct_fold(weight, bias, gamma, beta, mean, var, eps):
    return fold_batchnorm(weight, bias, gamma, beta, mean, var, eps)


def my_correct_fold(weight, bias, gamma, beta, mean, var, eps):
    b = np.zeros(weight.shape[0]) if bias is None else bias
    scale = _scale(gamma, var, eps)
    return weight * scale.reshape(-1, *[1] * (weight.ndim - 1)), beta + scale * (b - mean)


def fold_forgetting_bias(weight, bias, gamma, beta, mean, var, eps):
    scale = _scale(gamma, var, eps)
    return weight * scale.reshape(-1, *[1] * (weight.ndim - 1)), beta - scale * mean


def fold_with_std(weight, bias, gamma, beta, mean, var, eps):
    b = np.zeros(weight.shape[0]) if bias is None else bias
    scale = gamma / np.sqrt(var)
    return weight * scale.reshape(-1, *[1] * (weight.ndim - 1)), beta + scale * (b - mean)


def fold_wrong_axis(weight, bias, gamma, beta, mean, var, eps):
    b = np.zeros(weight.shape[0]) if bias is None else bias
    scale = _scale(gamma, var, eps)
    return weight * scale.reshape(1, -1, *[1] * (weight.ndim - 2)), beta + scale * (b - mean)


def fold_wrong_sign(weight, bias, gamma, beta, mean, var, eps):
    b = np.zeros(weight.shape[0]) if bias is None else bias
    scale = _scale(gamma, var, eps)
    return weight * scale.reshape(-1, *[1] * (weight.ndim - 1)), beta + scale * (b + mean)


def fold_without_none_bias(weight, bias, gamma, beta, mean, var, eps):
    scale = _scale(gamma, var, eps)
    return weight * scale.reshape(-1, *[1] * (weight.ndim - 1)), beta + scale * (bias - mean)


def fold_linear_only(weight, bias, gamma, beta, mean, var, eps):
    b = np.zeros(weight.shape[0]) if bias is None else bias
    scale = _scale(gamma, var, eps)
    return weight * scale[:, None], beta + scale * (b - mean)


def fold_in_place(weight, bias, gamma, beta, mean, var, eps):
    scale = _scale(gamma, var, eps)
    weight *= scale.reshape(-1, *[1] * (weight.ndim - 1))
    b = np.zeros(weight.shape[0]) if bias is None else bias
    return weight, beta + scale * (b - mean)


@pytest.mark.parametrize("answer", [correct_fold, my_correct_fold])
def test_correct_folds_pass(answer):
    feedback = check_fold_batchnorm(answer)
    assert feedback.passed, str(feedback)


@pytest.mark.parametrize("answer, words", [
    (fold_forgetting_bias, "own bias b"),
    (fold_with_std, "sqrt(running_var + eps)"),
    (fold_wrong_axis, "axis 0"),
    (fold_wrong_sign, "sign of the mean term"),
    (fold_without_none_bias, "bias=None"),
    (fold_linear_only, "(out, in, kh, kw)"),
    (fold_in_place, "in place"),
])
def test_fold_mistakes_are_named(answer, words):
    feedback = check_fold_batchnorm(answer)
    assert not feedback.passed and feedback.attempted
    assert words in str(feedback), str(feedback)


# Exercise 2's hint in notebook 04, piece by piece: an answer built from these pieces must pass
HINT_PIECES = ("scale = gamma / np.sqrt(running_var + eps)", "(-1,) + (1,) * (weight.ndim - 1)",
               "beta + scale * (bias - running_mean)", "with `bias` taken as zeros when it is `None`")


def fold_as_the_hint_says(weight, bias, gamma, beta, running_mean, running_var, eps):
    scale = gamma / np.sqrt(running_var + eps)
    bias = np.zeros(weight.shape[0]) if bias is None else bias
    return weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1)), beta + scale * (bias - running_mean)


def test_an_answer_that_follows_the_fold_hint_passes_including_bias_none():
    notebook = nbformat.read(Path(__file__).parents[1] / "notebooks" / "04_inference_statistics.ipynb", 4)
    hints = [cell.source for cell in notebook.cells if "Exercise 2: `scale" in cell.source]
    assert len(hints) == 1
    for piece in HINT_PIECES:
        assert piece in hints[0], piece
    feedback = check_fold_batchnorm(fold_as_the_hint_says)
    assert feedback.passed, str(feedback)
    # without the None rule the hint's formula fails on the bias-free case, and the checker says why
    feedback = check_fold_batchnorm(fold_without_none_bias)
    assert not feedback.passed and "bias=None" in str(feedback)


def test_fold_not_attempted_is_a_friendly_note():
    feedback = check_fold_batchnorm(not_attempted)
    assert not feedback.attempted
    assert "not attempted" in str(feedback)


# -- answers computed in float32 ---------------------------------------------------------------


def float32_update(running_mean, running_var, x, momentum, biased=False):
    x = x.astype(np.float32)
    variance = x.var(axis=0, ddof=0 if biased else 1)
    return ((1 - momentum) * running_mean.astype(np.float32) + momentum * x.mean(axis=0),
            (1 - momentum) * running_var.astype(np.float32) + momentum * variance)


def float32_fold(weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
    weight, gamma, beta, running_mean, running_var = (
        a.astype(np.float32) for a in (weight, gamma, beta, running_mean, running_var))
    scale = gamma / np.sqrt(running_var + eps)
    bias = np.zeros(len(gamma), np.float32) if bias is None else bias.astype(np.float32)
    return weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1)), beta + scale * (bias - running_mean)


def test_a_correct_answer_in_float32_is_told_so_with_the_tolerance():
    for feedback in (check_running_stats_update(float32_update), check_fold_batchnorm(float32_fold)):
        assert not feedback.passed
        assert "computes in float32" in feedback.messages[0] and "1e-09" in feedback.messages[0]


def test_a_float32_answer_with_a_real_mistake_gets_the_mistake_named():
    feedback = check_running_stats_update(lambda *args: float32_update(*args, biased=True))
    assert any("biased batch variance" in message for message in feedback.messages), feedback.messages
    assert not any("float32" in message for message in feedback.messages)


def test_float32_rounding_inside_a_float64_answer_is_recognised():
    def rounded_inside(running_mean, running_var, x, momentum):
        return tuple(np.asarray(a, dtype=np.float64) for a in float32_update(running_mean, running_var, x, momentum))

    feedback = check_running_stats_update(rounded_inside)
    assert "about as well as a float32 computation would" in feedback.messages[0]
